"""Prompt templates: how an agent's instructions, tools, knowledge and task become messages.

A template is a YAML (or JSON) file with a `system` and a `user` Jinja2
source and the variables they use. Three ship with the workbench
(`basic`, `xml`, `cot`, in `templates/` next to this module); users may
write their own and pass a path.

Templates are rendered in Jinja2's immutable sandbox with strict undefined
variables: a template can format the values it is given, and nothing else
(no attribute starting with `_`, no method that mutates, no `os` through
`lipsum.__globals__`). Values are inserted as data: text retrieved from a
document is never rendered as a template, and the `xml` filter escapes
`&`, `<` and `>` so a passage cannot close the tag that quotes it.

Variables the agent runner passes (`STANDARD_VARIABLES`): `agent_name` (str),
`instructions` (str), `task` (str), `tools` (list of {name, description}),
`knowledge` (list of {n, source, text}), `memories` (list of {key, text}),
`skills` (list of {name, description}).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workbench.engine.errors import InvalidRequest

TEMPLATES_DIR = Path(__file__).with_name("templates")
MAX_TEMPLATE_FILE_BYTES = 256 * 1024
MAX_SOURCE_CHARS = 64 * 1024
MAX_OUTPUT_CHARS = 1_000_000
#: the largest string or list a `*` in a template may build, and the largest `**` exponent
MAX_REPEAT_CHARS = 100_000
MAX_EXPONENT = 1_000
STANDARD_VARIABLES = ("agent_name", "instructions", "task", "tools", "knowledge", "memories", "skills")
TEMPLATE_SUFFIXES = (".yaml", ".yml", ".json")

IDENTIFIER = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
SLUG = r"^[a-z0-9][a-z0-9_-]{0,63}$"


# ---------------------------------------------------------------- sandbox


def xml_escape(value: Any) -> str:
    """Text safe between XML tags: `&`, `<` and `>` escaped."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def xml_attr(value: Any) -> str:
    """Text safe inside a double-quoted XML attribute (one line)."""
    text = xml_escape(value).replace('"', "&quot;")
    return " ".join(text.split())


def quote_lines(value: Any, prefix: str = "> ") -> str:
    """Every line of `value` prefixed (a quoted block that text inside cannot end)."""
    return "\n".join(prefix + line for line in str(value).splitlines() or [""])


def one_line(value: Any) -> str:
    """`value` with all whitespace runs (newlines too) collapsed to single spaces."""
    return " ".join(str(value).split())


def _environment() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

    class _Sandbox(ImmutableSandboxedEnvironment):
        """The immutable sandbox, plus limits on `*` and `**` (memory and CPU bombs)."""

        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "*":
                for seq, times in ((left, right), (right, left)):
                    if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
                        if len(seq) * times > MAX_REPEAT_CHARS:
                            raise SecurityError("the template repeats a value into something too large")
            if operator == "**" and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
                raise SecurityError("the template raises a number to too large a power")
            return super().call_binop(context, operator, left, right)

    env = _Sandbox(undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True)
    # Only what a prompt needs; `lipsum` and friends are attack surface, not features.
    for name in ("lipsum", "cycler", "joiner"):
        env.globals.pop(name, None)
    env.filters["xml"] = xml_escape
    env.filters["xml_attr"] = xml_attr
    env.filters["quote_lines"] = quote_lines
    env.filters["one_line"] = one_line
    env.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent, default=str)
    return env


@functools.cache
def environment() -> Any:
    """The process's sandboxed Jinja2 environment (jinja2 is imported on first use)."""
    return _environment()


@functools.lru_cache(maxsize=256)
def _compile(source: str) -> Any:
    return environment().from_string(source)


def _private_names(ast: Any) -> list[tuple[str, int]]:
    """Attribute or item names starting with `_` (sandbox escapes start there)."""
    from jinja2 import nodes

    found = []
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        name = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(name, str) and name.startswith("_"):
            found.append((name, node.lineno))
    for node in ast.find_all(nodes.Name):
        if node.name.startswith("_") or node.name == "self":
            found.append((node.name, node.lineno))
    return found


def _check_source(label: str, source: str) -> set[str]:
    """Parse `source`; return the variables it reads. ValueError names the line of a problem."""
    from jinja2 import TemplateSyntaxError, meta

    if len(source) > MAX_SOURCE_CHARS:
        raise ValueError(f"the {label} template is {len(source):,} characters long; the limit is {MAX_SOURCE_CHARS:,}")
    env = environment()
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"the {label} template has a syntax error on line {exc.lineno}: {exc.message}") from None
    private = _private_names(ast)
    if private:
        name, line = private[0]
        raise ValueError(
            f"the {label} template uses {name!r} on line {line}; templates may not touch private attributes "
            "or the template object"
        )
    return set(meta.find_undeclared_variables(ast)) - set(env.globals)


# ------------------------------------------------------------------ models


class TemplateVariable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=IDENTIFIER)
    description: str = ""
    required: bool = True
    default: Any = None


class PromptTemplate(BaseModel):
    """A validated template: both sources parse, and every variable they read is declared."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=SLUG)
    kind: Literal["basic", "xml", "cot"]
    description: str = ""
    variables: list[TemplateVariable] = Field(default_factory=list, max_length=100)
    system: str
    user: str

    @field_validator("variables")
    @classmethod
    def _unique(cls, value: list[TemplateVariable]) -> list[TemplateVariable]:
        seen: set[str] = set()
        for variable in value:
            if variable.name in seen:
                raise ValueError(f"variable {variable.name!r} is declared twice")
            seen.add(variable.name)
        return value

    @model_validator(mode="after")
    def _sources(self) -> PromptTemplate:
        used = _check_source("system", self.system) | _check_source("user", self.user)
        undeclared = sorted(used - {v.name for v in self.variables})
        if undeclared:
            raise ValueError(
                f"the templates use undeclared variable(s) {', '.join(map(repr, undeclared))}; "
                "declare them under `variables`"
            )
        return self

    @property
    def variable_names(self) -> list[str]:
        return [v.name for v in self.variables]


@dataclass
class RenderedPrompt:
    system: str
    user: str

    def messages(self) -> list[dict[str, str]]:
        """Chat messages (the system one only when it has text)."""
        out = [{"role": "system", "content": self.system}] if self.system else []
        return out + [{"role": "user", "content": self.user}]


# ----------------------------------------------------------------- loading


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def load_template(path: Path | str) -> PromptTemplate:
    """Read and validate a template file (.yaml, .yml or .json); InvalidRequest says what is wrong."""
    import yaml

    path = Path(path).expanduser()
    if path.suffix.lower() not in TEMPLATE_SUFFIXES:
        raise InvalidRequest(f"A template file must end in .yaml, .yml or .json, not {path.name!r}.")
    if not path.is_file():
        raise InvalidRequest(f"No template file at {path}.")
    try:
        size = path.stat().st_size
        if size > MAX_TEMPLATE_FILE_BYTES:
            raise InvalidRequest(
                f"The template file {path.name} is {size:,} bytes; the limit is {MAX_TEMPLATE_FILE_BYTES:,}."
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidRequest(f"Cannot read the template file {path}: {exc.strerror}.") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(f"The template file {path.name} is not UTF-8 text.") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(
                f"The template file {path.name} is not valid JSON (line {exc.lineno}: {exc.msg})."
            ) from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or "malformed YAML"
            where = f"line {mark.line + 1}: " if mark is not None else ""
            raise InvalidRequest(f"The template file {path.name} is not valid YAML ({where}{problem}).") from None
    if not isinstance(data, dict):
        raise InvalidRequest(
            f"The template file {path.name} must hold a mapping with name, kind, variables, system and user."
        )
    if "name" not in data and re.fullmatch(SLUG, path.stem):
        data["name"] = path.stem
    try:
        return PromptTemplate.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(f"The template file {path.name} is invalid ({_first_error(exc)}).") from None


@functools.cache
def _builtins() -> dict[str, PromptTemplate]:
    templates = {}
    for path in sorted(TEMPLATES_DIR.glob("*.yaml")):
        template = load_template(path)
        templates[template.name] = template
    return templates


def builtin_templates() -> dict[str, PromptTemplate]:
    """The templates that ship with the workbench, by name (loaded once)."""
    return dict(_builtins())


def get_template(name_or_path: str | Path) -> PromptTemplate:
    """A built-in template by name, else the template file at that path."""
    key = str(name_or_path).strip()
    builtins = _builtins()
    if key in builtins:
        return builtins[key]
    path = Path(key).expanduser()
    if path.suffix.lower() in TEMPLATE_SUFFIXES or "/" in key or path.is_file():
        return load_template(path)
    raise InvalidRequest(
        f"Unknown prompt template {key!r}; built-in templates are {', '.join(sorted(builtins))}, "
        "or pass the path of a .yaml or .json template file."
    )


# --------------------------------------------------------------- rendering


def _render_source(template: PromptTemplate, label: str, source: str, values: dict[str, Any], budget: int) -> str:
    from jinja2 import TemplateError
    from jinja2.sandbox import SecurityError

    try:
        compiled = _compile(source)
        parts: list[str] = []
        size = 0
        for chunk in compiled.generate(values):
            size += len(chunk)
            if size > budget:
                raise InvalidRequest(
                    f"Template {template.name!r} renders more than {MAX_OUTPUT_CHARS:,} characters; "
                    "shorten the inputs (knowledge, memories, task)."
                )
            parts.append(chunk)
    except SecurityError as exc:
        raise InvalidRequest(
            f"Template {template.name!r} tried something the template sandbox forbids in its {label} part "
            f"({_short(exc)})."
        ) from None
    except TemplateError as exc:
        raise InvalidRequest(f"Template {template.name!r} failed to render its {label} part ({_short(exc)}).") from None
    except (TypeError, ValueError, ArithmeticError, AttributeError, LookupError, RecursionError) as exc:
        raise InvalidRequest(
            f"Template {template.name!r} failed to render its {label} part ({type(exc).__name__}: {_short(exc)})."
        ) from None
    return "".join(parts).strip()


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text.rstrip(".")
    return text if len(text) <= 200 else text[:197] + "..."


def render(template: PromptTemplate, variables: dict[str, Any], *, ignore_unknown: bool = False) -> RenderedPrompt:
    """Render both parts of `template` with `variables`.

    Unknown variables (unless `ignore_unknown`) and missing required ones are
    an InvalidRequest; optional ones get (a copy of) their default. Any
    sandbox refusal or rendering error becomes an InvalidRequest with one
    sentence; so does an output over 1,000,000 characters.
    """
    declared = {v.name: v for v in template.variables}
    unknown = sorted(set(variables) - set(declared))
    if unknown and not ignore_unknown:
        raise InvalidRequest(
            f"Template {template.name!r} has no variable(s) {', '.join(map(repr, unknown))}; "
            f"it declares {', '.join(map(repr, declared)) or 'none'}."
        )
    missing = sorted(name for name, v in declared.items() if v.required and name not in variables)
    if missing:
        raise InvalidRequest(f"Template {template.name!r} needs the variable(s) {', '.join(map(repr, missing))}.")
    values = {name: variables[name] if name in variables else copy.deepcopy(v.default) for name, v in declared.items()}
    system = _render_source(template, "system", template.system, values, MAX_OUTPUT_CHARS)
    user = _render_source(template, "user", template.user, values, MAX_OUTPUT_CHARS - len(system))
    return RenderedPrompt(system=system, user=user)
