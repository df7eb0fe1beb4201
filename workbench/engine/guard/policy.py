"""Guardrails: what may go into a model, come out of it, and reach a tool.

`GuardPolicy` is the user's configuration (plain data, validated by pydantic);
`Guardrails` applies it. Every check returns a `GuardOutcome`: the text to
use from here on (secrets and, when enabled, personal data replaced by
`[REDACTED:<kind>]`), the violations found, and whether the step is blocked.

What each stage does:

=============  ==========  =========================  ===============  ======
stage          deny rules  secrets                    PII (opt-in)     size
=============  ==========  =========================  ===============  ======
prompt         block       redact (never sent)        redact           block
response       block       redact                     redact           block
tool_call      block       block (exfiltration)       --               block
tool_result    --          redact                     redact           --
=============  ==========  =========================  ===============  ======

A violation's `detail` says what kind of thing was found and where (line
number, count), never the matched text itself.

Performance: all built-in patterns are compiled once at import. Each one
anchors on a literal or a look-behind that allows only one candidate start
per run of token characters, and its repetitions are possessive or bounded,
so scanning is linear in the text size (a megabyte takes well under a second).
User patterns are compiled once per `Guardrails`.

This module imports only pydantic and the standard library: the engine's
schemas import it, not the other way round.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_PATTERNS = 100
MAX_PATTERN_CHARS = 500
REDACTED = "[REDACTED:{kind}]"

Stage = Literal["prompt", "response", "tool_call", "tool_result", "tripwire"]
Action = Literal["block", "redact", "warn"]


# --------------------------------------------------------------- validation


def compile_patterns(patterns: Iterable[str], flags: int = re.IGNORECASE) -> list[re.Pattern[str]]:
    """Compile user regexes; raise ValueError naming the first bad one."""
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern, flags))
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    return compiled


def check_pattern_list(patterns: list[str]) -> list[str]:
    """The shared validator of pattern lists: count, length, and that each compiles."""
    if len(patterns) > MAX_PATTERNS:
        raise ValueError(f"at most {MAX_PATTERNS} patterns are allowed, got {len(patterns)}")
    for pattern in patterns:
        if not pattern:
            raise ValueError("a pattern may not be empty (it would match everything)")
        if len(pattern) > MAX_PATTERN_CHARS:
            raise ValueError(
                f"pattern {pattern[:40]!r}... is {len(pattern)} characters long; the limit is {MAX_PATTERN_CHARS}"
            )
    compile_patterns(patterns)
    return patterns


# ------------------------------------------------------------------- models


class GuardPolicy(BaseModel):
    """What the guardrails block or redact. The defaults are safe for a local setup."""

    model_config = ConfigDict(extra="forbid")

    #: regexes (case-insensitive); a match in a prompt, response or tool call blocks it
    deny_patterns: list[str] = Field(default_factory=list)
    #: built-in secret patterns (provider keys, tokens, private keys, password assignments)
    block_secrets: bool = True
    #: emails, phone numbers, card numbers (Luhn-checked), IBANs (mod-97), US SSNs
    redact_pii: bool = False
    max_prompt_chars: int = Field(20_000, ge=1, le=2_000_000)
    max_response_chars: int = Field(20_000, ge=1, le=2_000_000)
    max_tool_argument_chars: int = Field(8_000, ge=1, le=2_000_000)
    #: regexes (case-insensitive) matched against f"{tool} {json.dumps(arguments, sort_keys=True)}"
    tool_deny_patterns: list[str] = Field(default_factory=list)

    @field_validator("deny_patterns", "tool_deny_patterns")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        return check_pattern_list(value)


#: Shell and SQL commands that a model's output should never carry into a run unnoticed.
DEFAULT_DANGEROUS: list[str] = [
    # rm -rf / (and ~, *, $HOME, /*), any flags, --no-preserve-root
    r"\brm\s++(?:-{1,2}[\w-]++\s++){1,4}(?:--\s+)?(?:/\*?|~/?|\$HOME/?|\*)(?=\s|$|[;&|)'\"`])",
    r"\bmkfs(?:\.\w+)?\s++(?:-\S++\s++){0,8}/dev/",
    r"\bdd\b[^\n]{0,200}?\bof=/dev/(?:sd[a-z]|nvme\d|hd[a-z]|vd[a-z]|xvd[a-z]|mmcblk\d|disk\d)",
    # fork bomb :(){ :|:& };:
    r":\s*\(\s*\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:",
    # curl/wget ... | sh
    r"\b(?:curl|wget)\b[^\n|]{0,500}\|\s*(?:sudo\s+)?(?:ba|z|da|k)?sh\b",
    r"\bchmod\s[^\n;&|]{0,100}?(?:0?777|a\+rwx|ugo\+rwx)\s+/(?=\s|$|[;&|*])",
    r">\s*/dev/(?:sd[a-z]|nvme\d+n\d+|hd[a-z]|vd[a-z]|xvd[a-z]|mmcblk\d+)\b",
    # shutdown/reboot as a command (own line, after ; & | ` ( or sudo), not in prose
    r"(?:^|[;&|`(]|\bsudo\b)[ \t]*(?:shutdown|reboot|poweroff|halt)(?:[ \t]+(?:-\w+|now|\+\d+))*[ \t]*(?:$|[;&|`)])",
    r"\b(?:drop\s+(?:table|database|schema)|truncate\s+table)\b",
    r"\bformat\s+[a-z]:(?:\s|$)",
]


class TripwirePolicy(BaseModel):
    """Hard limits on one run, and the threshold of the anomaly detector."""

    model_config = ConfigDict(extra="forbid")

    max_run_seconds: float = Field(300, gt=0, le=86_400)
    max_total_tokens: int = Field(50_000, ge=1, le=100_000_000)
    #: regexes (case-insensitive, multi-line) that block a model or tool output
    dangerous_output_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_DANGEROUS))
    anomaly_z: float = Field(4.0, gt=0)
    anomaly_min_samples: int = Field(8, ge=3)

    @field_validator("dangerous_output_patterns")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        return check_pattern_list(value)


class Violation(BaseModel):
    """One rule that fired. `detail` is one sentence and never quotes a secret."""

    model_config = ConfigDict(extra="forbid")

    stage: Stage
    rule: str
    detail: str
    action: Action


@dataclass
class GuardOutcome:
    """The text to continue with (possibly redacted) and what was found in it."""

    text: str
    violations: list[Violation] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return any(v.action == "block" for v in self.violations)

    @property
    def redacted(self) -> bool:
        return any(v.action == "redact" for v in self.violations)


# ---------------------------------------------------------------- detectors


@dataclass(frozen=True)
class Detector:
    """A built-in pattern: `kind` names it in rules and placeholders."""

    kind: str
    label: str  # human words for the detail sentence, singular
    regex: re.Pattern[str]
    group: str | None = None  # redact only this named group (e.g. the value of `password: ...`)
    check: Callable[[str], bool] | None = None  # a second test of the matched text (Luhn, mod-97)


_PLACEHOLDER_VALUE = re.compile(
    r"[*xX.•#-]+|\[REDACTED.*|<[^>]*>|\$\{?\w+\}?|(?:none|null|true|false|changeme|redacted|example|placeholder|your[\w-]*)",
    re.I,
)


def _real_value(value: str) -> bool:
    """A `password: VALUE` whose value is a placeholder is not a leak."""
    # Bare numbers are settings far more often than secrets (max_token: 4096).
    return _PLACEHOLDER_VALUE.fullmatch(value) is None and not value.isdigit()


SECRET_DETECTORS: tuple[Detector, ...] = (
    Detector(
        "private_key",
        "private key block",
        re.compile(
            r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY( BLOCK)?-----"
            r"(?:(?:[^-]|-(?!----))*+-----END [A-Z0-9 ]{0,40}PRIVATE KEY( BLOCK)?-----|[A-Za-z0-9+/=\s]*+)"
        ),
    ),
    Detector("anthropic_key", "Anthropic API key", re.compile(r"(?<![A-Za-z0-9_-])sk-ant-[A-Za-z0-9_-]{20,}+")),
    Detector(
        "openai_key",
        "OpenAI API key",
        re.compile(r"(?<![A-Za-z0-9_-])sk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}+"),
    ),
    Detector(
        "github_token",
        "GitHub token",
        re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,}+|github_pat_[A-Za-z0-9_]{30,}+)"),
    ),
    Detector(
        "aws_access_key",
        "AWS access key id",
        re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?![A-Za-z0-9])"),
    ),
    Detector(
        "aws_secret_key",
        "AWS secret access key",
        re.compile(
            r"(?<![A-Za-z0-9])aws_?secret_?(?:access_?)?key[\"']?\s*+[:=]\s*+[\"']?"
            r"(?P<secret>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
            re.I,
        ),
        group="secret",
    ),
    Detector("slack_token", "Slack token", re.compile(r"(?<![A-Za-z0-9-])xox[abposre]-[A-Za-z0-9-]{10,}+")),
    Detector(
        "slack_webhook",
        "Slack webhook URL",
        re.compile(r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]{10,}+"),
    ),
    Detector(
        "google_api_key", "Google API key", re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])")
    ),
    Detector("google_oauth_token", "Google OAuth token", re.compile(r"(?<![A-Za-z0-9_.-])ya29\.[0-9A-Za-z_-]{20,}+")),
    Detector(
        "jwt",
        "JSON web token",
        re.compile(r"(?<![A-Za-z0-9_.-])eyJ[A-Za-z0-9_-]{8,}+\.eyJ[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]*+"),
    ),
    Detector(
        "bearer_token",
        "bearer token",
        re.compile(r"(?<![A-Za-z0-9])bearer[ \t]++(?P<secret>[A-Za-z0-9._~+/-]{16,}+=*+)", re.I),
        group="secret",
    ),
    Detector(
        "secret_assignment",
        "password or API key assignment",
        re.compile(
            r"(?<![A-Za-z0-9])(?:api[_-]?key|api[_-]?secret|secret[_-]?key|client[_-]?secret|private[_-]?key"
            r"|access[_-]?token|auth[_-]?token|refresh[_-]?token|session[_-]?token|token|secret"
            r"|password|passwd|passphrase)"
            r"[\"']?[ \t]*+[:=][ \t]*+[\"']?"
            r"(?P<secret>[A-Za-z0-9_\-.~+/=!@#$%^&*?|]{6,}+)(?![^\s\"'`,;)\]}])",
            re.I,
        ),
        group="secret",
        check=_real_value,
    ),
)


def luhn_ok(number: str) -> bool:
    """The Luhn checksum of the digits in `number` (separators ignored)."""
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0 and len(set(digits)) > 1


def iban_ok(value: str) -> bool:
    """The ISO 13616 mod-97 check of an IBAN (spaces ignored)."""
    compact = value.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    try:
        return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1
    except ValueError:
        return False


PII_DETECTORS: tuple[Detector, ...] = (
    Detector(
        "card",
        "payment card number",
        # 4-4-4-4 (or 13-19 digits in one run) and 4-6-5 (Amex), one separator style per number
        re.compile(
            r"(?<![\d-])(?:\d{4}([ -]?)\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?|\d{4}([ -]?)\d{6}\2\d{4,5})(?![\d-])"
        ),
        check=luhn_ok,
    ),
    Detector(
        "iban",
        "IBAN",
        re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])"),
        check=iban_ok,
    ),
    Detector(
        "ssn",
        "US social security number",
        re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])"),
    ),
    Detector(
        "email",
        "email address",
        re.compile(
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}+@"
            r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-])"
        ),
    ),
    Detector(
        "phone",
        "phone number",
        re.compile(
            r"(?<![\w+])(?:"
            r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?|\d{1,4}[ .-])(?:\d{2,5}[ .-]){0,3}\d{3,5}"
            r"|\+\d{8,15}"
            r"|(?:\(\d{3}\)[ ]?|\d{3}[ .-])\d{3}[ .-]\d{4}"
            r")(?!\w)(?![.-]\d)"
        ),
    ),
)


@dataclass
class Finding:
    kind: str
    label: str
    start: int
    end: int


def find(text: str, detectors: Iterable[Detector]) -> list[Finding]:
    """Non-overlapping findings of `detectors` in `text`; earlier detectors win overlaps."""
    accepted: list[Finding] = []
    starts: list[int] = []  # sorted starts of accepted spans, for overlap checks
    for detector in detectors:
        for match in detector.regex.finditer(text):
            if detector.check is not None and not detector.check(match.group(detector.group or 0)):
                continue
            start, end = match.span(detector.group) if detector.group else match.span()
            if start == end:
                continue
            i = bisect.bisect_left(starts, start)
            if i < len(starts) and accepted[i].start < end:
                continue
            if i > 0 and accepted[i - 1].end > start:
                continue
            starts.insert(i, start)
            accepted.insert(i, Finding(detector.kind, detector.label, start, end))
    return accepted


def replace_findings(text: str, findings: list[Finding]) -> str:
    """`text` with each (non-overlapping, sorted) finding replaced by its placeholder."""
    if not findings:
        return text
    parts: list[str] = []
    last = 0
    for f in findings:
        parts.append(text[last : f.start])
        parts.append(REDACTED.format(kind=f.kind))
        last = f.end
    parts.append(text[last:])
    return "".join(parts)


_WHERE = {
    "prompt": "The prompt",
    "response": "The response",
    "tool_call": "The tool call",
    "tool_result": "The tool result",
    "tripwire": "The run",
}


def _plural(label: str, count: int) -> str:
    return label if count == 1 else (label + "es" if label.endswith(("s", "sh", "ch", "x")) else label + "s")


def summarize(stage: Stage, findings: list[Finding], prefix: str, action: Action, text: str) -> list[Violation]:
    """One violation per kind found: count and first line, never the text."""
    by_kind: dict[str, list[Finding]] = {}
    for f in findings:
        by_kind.setdefault(f.kind, []).append(f)
    outcome = {"redact": "was redacted", "block": "is blocked", "warn": "was allowed"}[action]
    violations = []
    for kind, group in by_kind.items():
        first = group[0]
        line = text.count("\n", 0, first.start) + 1
        count = len(group)
        noun = _plural(first.label, count)
        where = _WHERE[stage]
        detail = f"{where} contains {count} {noun} (first on line {line}), so it {outcome}."
        if action == "redact":
            detail = f"{where} contained {count} {noun} (first on line {line}); {'it was' if count == 1 else 'they were'} redacted."
        violations.append(Violation(stage=stage, rule=f"{prefix}:{kind}", detail=detail, action=action))
    return violations


# --------------------------------------------------------------- guardrails


class Guardrails:
    """Applies a `GuardPolicy`; cheap to call, safe to share between threads."""

    def __init__(self, policy: GuardPolicy) -> None:
        self.policy = policy
        self._deny = compile_patterns(policy.deny_patterns)
        self._tool_deny = compile_patterns(policy.tool_deny_patterns)
        self._secret_detectors = SECRET_DETECTORS if policy.block_secrets else ()
        self._pii_detectors = PII_DETECTORS if policy.redact_pii else ()

    # ------------------------------------------------------------- helpers

    def _deny_hits(
        self, stage: Stage, text: str, patterns: list[re.Pattern[str]], rule: str, what: str
    ) -> list[Violation]:
        violations = []
        for index, pattern in enumerate(patterns, 1):
            match = pattern.search(text)
            if match is not None:
                line = text.count("\n", 0, match.start()) + 1
                violations.append(
                    Violation(
                        stage=stage,
                        rule=rule,
                        detail=f"{_WHERE[stage]} matches {what} #{index} (line {line}), so it is blocked.",
                        action="block",
                    )
                )
        return violations

    def _size(self, stage: Stage, text: str, limit: int, what: str) -> Violation | None:
        if len(text) <= limit:
            return None
        return Violation(
            stage=stage,
            rule="size",
            detail=f"{_WHERE[stage]} has {len(text):,} characters of {what}; the limit is {limit:,}, so it is blocked.",
            action="block",
        )

    def _redacting(self, stage: Stage, text: str, deny: bool, limit: int | None, what: str) -> GuardOutcome:
        """The prompt/response/tool-result path: deny and size block, secrets and PII redact."""
        violations: list[Violation] = []
        if limit is not None:
            too_big = self._size(stage, text, limit, what)
            if too_big is not None:
                # Do not scan megabytes we are going to refuse anyway.
                return GuardOutcome(text=text, violations=[too_big])
        if deny:
            violations += self._deny_hits(stage, text, self._deny, "deny_pattern", "deny pattern")
        secrets = find(text, self._secret_detectors)
        pii = find(text, self._pii_detectors)
        findings = _merge(secrets, pii)
        secret_ids = {id(f) for f in secrets}
        violations += summarize(stage, [f for f in findings if id(f) in secret_ids], "secret", "redact", text)
        violations += summarize(stage, [f for f in findings if id(f) not in secret_ids], "pii", "redact", text)
        return GuardOutcome(text=replace_findings(text, findings), violations=violations)

    # ---------------------------------------------------------------- API

    def check_prompt(self, text: str) -> GuardOutcome:
        """Deny patterns and size block; secrets (and PII when enabled) are redacted before the model sees them."""
        return self._redacting("prompt", text, True, self.policy.max_prompt_chars, "prompt")

    def check_response(self, text: str) -> GuardOutcome:
        """Deny patterns and size block; secrets (and PII when enabled) are redacted."""
        return self._redacting("response", text, True, self.policy.max_response_chars, "response")

    def check_tool_result(self, tool: str, text: str) -> GuardOutcome:
        """Secrets (and PII when enabled) are redacted; a tool result is never blocked."""
        return self._redacting("tool_result", text, False, None, "tool output")

    def check_tool_call(self, tool: str, arguments: dict[str, Any]) -> GuardOutcome:
        """Deny patterns, tool deny patterns, secrets in the arguments (exfiltration) and size all block."""
        dumped = json.dumps(arguments, sort_keys=True, default=str)
        call = f"{tool} {dumped}"
        too_big = self._size("tool_call", dumped, self.policy.max_tool_argument_chars, "arguments")
        if too_big is not None:
            return GuardOutcome(text=call, violations=[too_big])
        violations = self._deny_hits("tool_call", call, self._deny, "deny_pattern", "deny pattern")
        leaves = list(_leaves(arguments))
        if not violations:
            # The plain string values too: JSON escaping (\" \n) can hide a match.
            for _path, value in leaves:
                hits = self._deny_hits("tool_call", value, self._deny, "deny_pattern", "deny pattern")
                if hits:
                    violations += hits
                    break
        violations += self._deny_hits("tool_call", call, self._tool_deny, "tool_deny_pattern", "tool deny pattern")
        # Secrets leaving through a tool's arguments are exfiltration: block.
        found: dict[str, tuple[str, int, str]] = {}  # kind -> (label, count, first argument)
        for path, value in leaves:
            for f in find(value, self._secret_detectors):
                label, count, first = found.get(f.kind, (f.label, 0, path))
                found[f.kind] = (label, count + 1, first)
        for kind, (label, count, first) in found.items():
            violations.append(
                Violation(
                    stage="tool_call",
                    rule=f"secret:{kind}",
                    detail=f"The call to {tool[:64]!r} carries {count} {_plural(label, count)} (first in {first}), so it is blocked.",
                    action="block",
                )
            )
        return GuardOutcome(text=call, violations=violations)

    def redact(self, text: str) -> str:
        """`text` with secrets (and PII when enabled) replaced by `[REDACTED:<kind>]`."""
        return replace_findings(text, _merge(find(text, self._secret_detectors), find(text, self._pii_detectors)))


def _merge(first: list[Finding], second: list[Finding]) -> list[Finding]:
    """Sorted, non-overlapping union; `first` wins overlaps."""
    if not second:
        return first
    merged = list(first)
    starts = [f.start for f in merged]
    for f in second:
        i = bisect.bisect_left(starts, f.start)
        if i < len(merged) and merged[i].start < f.end:
            continue
        if i > 0 and merged[i - 1].end > f.start:
            continue
        starts.insert(i, f.start)
        merged.insert(i, f)
    return merged


def _leaves(value: Any, path: str = "") -> Iterable[tuple[str, str]]:
    """(where, text) for every string key and value inside JSON-like data."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            yield (f"argument {where!r}" if where else "the arguments"), item
        elif isinstance(item, dict):
            for k, v in reversed(list(item.items())):
                key = str(k)
                stack.append((f"{where}.{key}" if where else key, v))
                yield (f"an argument name under {where!r}" if where else "an argument name"), key
        elif isinstance(item, (list, tuple)):
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(item))))
        elif item is not None and not isinstance(item, (int, float, bool)):
            yield (f"argument {where!r}" if where else "the arguments"), str(item)
