"""Workflow definitions: a YAML file of steps, validated before anything runs.

A workflow is a list of steps run in order. Kinds:

* `agent`: an agent runs a task (`agent`, `task`);
* `tool`: one tool call (`tool`, `arguments`);
* `parallel`: a group of agent/tool steps run concurrently, at most
  `max_concurrency` at a time;
* `approval`: waits for a person (`prompt`, `timeout_seconds`, `default`
  approve|deny taken when the time runs out); a denial stops the workflow
  unless `on_deny: continue`;
* `condition`: branches on an earlier output (`if: {step|input, contains|equals}`)
  to the step `then` or `else` names (forward only; without one, the next step);
* `handoff`: runs a task on the agent `to`, with `context`, on behalf of `from`.

Any step may say `next: STEP` (or `next: end`) to jump forward when it is done,
so a `then` branch can skip its `else` branch.

Strings in `task`, `arguments`, `context` and `prompt` are templates rendered in
the prompt templates' sandbox (`workbench.engine.agents.templates`) with two
variables: `inputs` (the workflow's inputs) and `steps` (`steps.ID.output`, the
text an earlier step produced). Validation refuses, before anything runs: an
unknown reference (an input not declared, a step that does not run earlier), a
jump backwards (a cycle), and agents or tools the workbench does not have.
Every message names the step and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workbench.engine.errors import InvalidRequest, WorkflowInvalid

STEP_ID = r"^[a-z][a-z0-9_]{0,63}$"
MAX_WORKFLOW_FILE_BYTES = 256 * 1024
MAX_STEPS = 200
END = "end"
#: template variables a workflow may read
VARIABLES = ("inputs", "steps")


class Catalog(Protocol):
    """What validation needs to know about the workbench: which agents and tools exist."""

    def has_agent(self, agent_id: str) -> bool: ...

    def tool_permission(self, name: str) -> str | None:
        """The tool's permission class (read, write, exec, network), or None when there is no such tool."""
        ...


# ------------------------------------------------------------------ models


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(pattern=STEP_ID)
    kind: str
    description: str = ""
    #: where to go when this step is done (a later step's id, or "end")
    next: str | None = None


class AgentStep(_Step):
    kind: Literal["agent"]
    agent: str = Field(min_length=1, max_length=64)
    task: str = Field(min_length=1, max_length=20_000)
    model: str | None = None
    max_steps: int | None = Field(None, ge=1, le=100)


class ToolStep(_Step):
    kind: Literal["tool"]
    tool: str = Field(min_length=1, max_length=200)
    arguments: dict[str, Any] = Field(default_factory=dict)
    #: run the call with this agent's tool allowlist (optional)
    agent: str | None = None


class HandoffStep(_Step):
    kind: Literal["handoff"]
    from_agent: str | None = Field(None, alias="from")
    to: str = Field(min_length=1, max_length=64)
    task: str = Field(min_length=1, max_length=20_000)
    context: str = ""


Leaf = Annotated[AgentStep | ToolStep | HandoffStep, Field(discriminator="kind")]


class ParallelStep(_Step):
    kind: Literal["parallel"]
    max_concurrency: int = Field(4, ge=1, le=32)
    steps: list[Leaf] = Field(min_length=1, max_length=50)


class ApprovalStep(_Step):
    kind: Literal["approval"]
    prompt: str = Field("Continue?", max_length=4000)
    timeout_seconds: float = Field(24 * 3600, gt=0, le=365 * 24 * 3600)
    default: Literal["approve", "deny"] = "deny"
    on_deny: Literal["stop", "continue"] = "stop"


class Test(BaseModel):
    """`if:` of a condition: one earlier output (or input) compared with `contains` or `equals`."""

    model_config = ConfigDict(extra="forbid")

    step: str | None = None
    input: str | None = None
    contains: str | None = None
    equals: str | None = None
    ignore_case: bool = False

    @model_validator(mode="after")
    def _one_each(self) -> Test:
        if (self.step is None) == (self.input is None):
            raise ValueError("name exactly one of `step` or `input` to test")
        if (self.contains is None) == (self.equals is None):
            raise ValueError("give exactly one of `contains` or `equals`")
        return self

    def holds(self, value: str) -> bool:
        """Whether the test is true of `value` (the referenced output)."""
        expected = self.contains if self.contains is not None else self.equals
        assert expected is not None
        left, right = (value.casefold(), expected.casefold()) if self.ignore_case else (value, expected)
        return right in left if self.contains is not None else left.strip() == right.strip()


class ConditionStep(_Step):
    kind: Literal["condition"]
    test: Test = Field(alias="if")
    then: str | None = None
    else_: str | None = Field(None, alias="else")


Step = Annotated[
    AgentStep | ToolStep | HandoffStep | ParallelStep | ApprovalStep | ConditionStep, Field(discriminator="kind")
]


class InputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    default: str | None = None

    @property
    def required(self) -> bool:
        return self.default is None


class WorkflowDefinition(BaseModel):
    """A parsed workflow (its own shape checked; `check` checks references, jumps and the catalog)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    description: str = ""
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)

    @field_validator("inputs", mode="before")
    @classmethod
    def _inputs(cls, value: Any) -> Any:
        # `inputs: [topic, audience]` is shorthand for required inputs without descriptions.
        if isinstance(value, list):
            return {str(name): {} for name in value}
        if isinstance(value, dict):
            return {
                k: ({} if v is None else {"default": str(v)} if not isinstance(v, dict) else v)
                for k, v in value.items()
            }
        return value

    # --------------------------------------------------------------- lookup

    def all_steps(self) -> list[_Step]:
        """Every step, a parallel group's members right after the group."""
        out: list[_Step] = []
        for step in self.steps:
            out.append(step)
            if isinstance(step, ParallelStep):
                out.extend(step.steps)
        return out

    def step(self, step_id: str) -> _Step:
        for step in self.all_steps():
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def index(self, step_id: str) -> int:
        """The position of a top-level step."""
        for number, step in enumerate(self.steps):
            if step.id == step_id:
                return number
        raise KeyError(step_id)

    def render_inputs(self, given: dict[str, str]) -> dict[str, str]:
        """`given` checked against the declared inputs, with defaults filled in."""
        unknown = sorted(set(given) - set(self.inputs))
        if unknown:
            raise InvalidRequest(
                f"Workflow {self.name!r} has no input(s) {', '.join(map(repr, unknown))}; "
                f"it declares {', '.join(map(repr, self.inputs)) or 'none'}."
            )
        missing = sorted(name for name, spec in self.inputs.items() if spec.required and name not in given)
        if missing:
            raise InvalidRequest(
                f"Workflow {self.name!r} needs the input(s) {', '.join(map(repr, missing))} (--input NAME=VALUE)."
            )
        return {name: str(given[name]) if name in given else str(spec.default) for name, spec in self.inputs.items()}


# -------------------------------------------------------------- templates


def template_fields(step: _Step) -> list[tuple[str, str]]:
    """(field, template source) of every string in a step that is rendered before it runs."""
    if isinstance(step, (AgentStep,)):
        return [("task", step.task)]
    if isinstance(step, HandoffStep):
        return [("task", step.task), ("context", step.context)]
    if isinstance(step, ApprovalStep):
        return [("prompt", step.prompt)]
    if isinstance(step, ToolStep):
        out: list[tuple[str, str]] = []

        def walk(where: str, value: Any) -> None:
            if isinstance(value, str):
                out.append((where, value))
            elif isinstance(value, dict):
                for key, item in value.items():
                    walk(f"{where}.{key}", item)
            elif isinstance(value, list):
                for n, item in enumerate(value):
                    walk(f"{where}[{n}]", item)

        walk("arguments", step.arguments)
        return out
    return []


def references(source: str) -> tuple[set[str], set[str], set[str]]:
    """(step ids, input names, other names) a template reads. ValueError says why it cannot be a template."""
    from jinja2 import TemplateSyntaxError, nodes

    from workbench.engine.agents.templates import _private_names, environment

    if "{" not in source:  # plain text: nothing to parse
        return set(), set(), set()
    try:
        ast = environment().parse(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error on line {exc.lineno}: {exc.message}") from None
    private = _private_names(ast)
    if private:
        raise ValueError(f"the template uses {private[0][0]!r}; templates may not touch private attributes")
    steps: set[str] = set()
    inputs: set[str] = set()
    other: set[str] = set()
    for node in ast.find_all(nodes.Name):
        if node.name not in VARIABLES and node.ctx == "load":
            other.add(node.name)
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        base = node.node
        key = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(base, nodes.Name) and isinstance(key, str):
            if base.name == "steps":
                steps.add(key)
            elif base.name == "inputs":
                inputs.add(key)
    return steps, inputs, other


def render(source: str, steps: dict[str, dict[str, Any]], inputs: dict[str, str]) -> str:
    """Render one template string with `steps` and `inputs` (InvalidRequest on any failure)."""
    from jinja2 import TemplateError
    from jinja2.sandbox import SecurityError

    from workbench.engine.agents.templates import environment

    if "{" not in source:
        return source
    try:
        rendered = str(environment().from_string(source).render(steps=steps, inputs=inputs))
    except SecurityError as exc:
        raise InvalidRequest(f"A workflow template tried something the sandbox forbids ({exc}).") from None
    except (TemplateError, TypeError, ValueError, ArithmeticError, AttributeError, LookupError) as exc:
        raise InvalidRequest(f"A workflow template failed to render ({type(exc).__name__}: {exc}).") from None
    # Jinja drops one trailing newline; a line appended to a file needs it.
    return rendered + "\n" if source.endswith("\n") and not rendered.endswith("\n") else rendered


def render_value(value: Any, steps: dict[str, dict[str, Any]], inputs: dict[str, str]) -> Any:
    """`value` with every string in it rendered (tool arguments)."""
    if isinstance(value, str):
        return render(value, steps, inputs)
    if isinstance(value, dict):
        return {key: render_value(item, steps, inputs) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, steps, inputs) for item in value]
    return value


# ------------------------------------------------------------- checking


def _fail(step: str, field: str, message: str) -> WorkflowInvalid:
    return WorkflowInvalid(f"Step {step!r}, field {field!r}: {message}.")


def check(definition: WorkflowDefinition, catalog: Catalog | None = None) -> WorkflowDefinition:
    """Refuse a definition that cannot run: duplicate ids, unknown references, cycles, unknown agents or tools.

    `catalog` (when given) is asked whether each agent and tool exists. Returns the definition.
    """
    seen: set[str] = set()
    for step in definition.all_steps():
        if step.id in seen:
            raise _fail(step.id, "id", "another step has the same id")
        if step.id == END:
            raise _fail(step.id, "id", f"{END!r} is reserved (it names the end of the workflow)")
        seen.add(step.id)
    top = [s.id for s in definition.steps]
    members = {m.id: s.id for s in definition.steps if isinstance(s, ParallelStep) for m in s.steps}

    def jump(step: _Step, field: str, target: str | None) -> None:
        if target is None or target == END:
            return
        if target in members:
            raise _fail(
                step.id, field, f"{target!r} is inside the parallel group {members[target]!r}; jump to the group"
            )
        if target not in top:
            raise _fail(step.id, field, f"there is no step {target!r}")
        if top.index(target) <= top.index(step.id):
            raise _fail(step.id, field, f"jumping back to {target!r} would make a cycle; jumps go forward only")

    for step in definition.steps:
        jump(step, "next", step.next)
        if isinstance(step, ConditionStep):
            jump(step, "then", step.then)
            jump(step, "else", step.else_)
            name = step.test.step or step.test.input
            if step.test.step is not None and not _runs_before(definition, step.test.step, step.id):
                raise _fail(step.id, "if.step", f"{name!r} is not a step that runs before this one")
            if step.test.input is not None and step.test.input not in definition.inputs:
                raise _fail(step.id, "if.input", f"{name!r} is not a declared input")
        group = step.steps if isinstance(step, ParallelStep) else [step]
        for member in group:
            if member is not step and member.next is not None:
                raise _fail(member.id, "next", "steps inside a parallel group cannot jump")
            for field, source in template_fields(member):
                try:
                    used_steps, used_inputs, other = references(source)
                except ValueError as exc:
                    raise _fail(member.id, field, str(exc)) from None
                if other:
                    raise _fail(
                        member.id,
                        field,
                        f"the template reads {sorted(other)[0]!r}; only `inputs.NAME` and `steps.ID.output` exist",
                    )
                for name in sorted(used_inputs):
                    if name not in definition.inputs:
                        raise _fail(member.id, field, f"`inputs.{name}` is not a declared input")
                for name in sorted(used_steps):
                    if name not in seen:
                        raise _fail(member.id, field, f"`steps.{name}` names no step")
                    if not _runs_before(definition, name, member.id):
                        raise _fail(
                            member.id, field, f"`steps.{name}` does not run before this step (a cycle or a sibling)"
                        )
    if catalog is not None:
        _check_catalog(definition, catalog)
    return definition


def _runs_before(definition: WorkflowDefinition, earlier: str, later: str) -> bool:
    """Whether step `earlier` finishes before step `later` starts (members of one group run together)."""

    def position(step_id: str) -> int:
        for number, step in enumerate(definition.steps):
            if step.id == step_id or (isinstance(step, ParallelStep) and any(m.id == step_id for m in step.steps)):
                return number
        return -1

    a, b = position(earlier), position(later)
    return a >= 0 and b >= 0 and a < b


def _check_catalog(definition: WorkflowDefinition, catalog: Catalog) -> None:
    for step in definition.all_steps():
        agents: list[tuple[str, str | None]] = []
        if isinstance(step, AgentStep):
            agents.append(("agent", step.agent))
        elif isinstance(step, HandoffStep):
            agents += [("to", step.to), ("from", step.from_agent)]
        elif isinstance(step, ToolStep):
            agents.append(("agent", step.agent))
            if catalog.tool_permission(step.tool) is None:
                raise _fail(step.id, "tool", f"there is no tool named {step.tool!r} (`workbench tools list`)")
        for field, agent in agents:
            if agent is not None and not catalog.has_agent(agent):
                raise _fail(step.id, field, f"there is no agent {agent!r} (`workbench agents list`)")


# --------------------------------------------------------------- loading


def _describe(exc: ValidationError, data: Any) -> str:
    """The first pydantic error, its location told as step id and field."""
    error = exc.errors()[0]
    loc = list(error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "union_tag_invalid":
        message = "kind must be one of agent, tool, parallel, approval, condition, handoff"
    elif error["type"] == "union_tag_not_found":
        message = "the step has no `kind` (agent, tool, parallel, approval, condition or handoff)"
    elif error["type"] == "extra_forbidden":
        message = "this field is not known here"
    elif error["type"] == "missing":
        message = "this field is required"
    raw = data
    step_name: str | None = None
    field: list[str] = []
    kinds = {"agent", "tool", "parallel", "approval", "condition", "handoff"}
    after_index = False
    for part in loc:
        if isinstance(part, int) and isinstance(raw, list):
            raw = raw[part] if part < len(raw) else None
            if isinstance(raw, dict) and "id" in raw:
                step_name, field = str(raw["id"]), []
            else:
                field.append(f"[{part}]")
            after_index = True
            continue
        if after_index and isinstance(raw, dict) and part in kinds and raw.get("kind") == part:
            after_index = False
            continue  # the discriminator's tag in the location, not a field
        after_index = False
        field.append(str(part))
        raw = raw.get(part) if isinstance(raw, dict) else None
    if error["type"].startswith("union_tag"):
        field.append("kind")
    where = ".".join(f for f in field if f) or "definition"
    if step_name is not None:
        return f"Step {step_name!r}, field {where!r}: {message}."
    return f"Field {where!r}: {message}."


def parse(data: Any, *, source: str = "The workflow") -> WorkflowDefinition:
    """A definition from already-loaded YAML/JSON data (shape only; `check` does the rest)."""
    if not isinstance(data, dict):
        raise WorkflowInvalid(f"{source} must hold a mapping with name, inputs and steps.")
    try:
        return WorkflowDefinition.model_validate(data)
    except ValidationError as exc:
        raise WorkflowInvalid(f"{source} is invalid: {_describe(exc, data)}") from None


def loads(text: str, *, source: str = "The workflow") -> WorkflowDefinition:
    """Parse YAML (or JSON, which is YAML) text into a definition (shape only)."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "malformed YAML"
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise WorkflowInvalid(f"{source} is not valid YAML ({where}{problem}).") from None
    return parse(data, source=source)


def load(path: Path | str, catalog: Catalog | None = None) -> WorkflowDefinition:
    """Read, parse and check a workflow file; WorkflowInvalid (or InvalidRequest) says what is wrong."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InvalidRequest(f"No workflow file at {path}.")
    try:
        size = path.stat().st_size
        if size > MAX_WORKFLOW_FILE_BYTES:
            raise InvalidRequest(
                f"The workflow file {path.name} is {size:,} bytes; the limit is {MAX_WORKFLOW_FILE_BYTES:,}."
            )
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(f"The workflow file {path.name} is not UTF-8 text.") from None
    except OSError as exc:
        raise InvalidRequest(f"Cannot read the workflow file {path}: {exc.strerror}.") from None
    return check(loads(text, source=f"The workflow file {path.name}"), catalog)


def dumps(definition: WorkflowDefinition) -> str:
    """The definition as JSON (how a running workflow carries it: the DBOS input)."""
    return json.dumps(definition.model_dump(mode="json", by_alias=True, exclude_none=True), ensure_ascii=False)
