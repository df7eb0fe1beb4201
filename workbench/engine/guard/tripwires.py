"""Tripwires: hard stops for one run, and a warning when a metric looks unusual.

* `check_budget` blocks a run that has used up its steps, tokens or time.
  It is meant to be called before each further step: the step budget is used
  up when `steps_done >= max_steps`, the token budget when
  `total_tokens >= max_total_tokens`, the time budget when more than
  `max_run_seconds` have passed since the `Tripwires` was made (or `restart`).
* `check_output` blocks model or tool output that carries a dangerous command
  (`rm -rf /`, `mkfs`, a fork bomb, `curl ... | sh`, `DROP TABLE` ...).
* `observe` compares a metric (tokens of a step, a tool's latency ...) with
  its history: the values `seed`ed from earlier runs plus those observed in
  this run. A value more than `anomaly_z` standard deviations from the mean,
  once the history has `anomaly_min_samples` values, is reported as a "warn"
  violation; the run goes on.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterable

from workbench.engine.guard.policy import TripwirePolicy, Violation, compile_patterns

#: values kept per metric (oldest dropped first)
HISTORY_LIMIT = 10_000
#: a spread this small relative to the mean counts as no spread at all (float noise)
_REL_EPSILON = 1e-12


class Tripwires:
    """The tripwires of one run. Not shared between runs: it holds the run's clock and history."""

    def __init__(self, policy: TripwirePolicy, max_steps: int, clock: Callable[[], float] = time.monotonic) -> None:
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        self.policy = policy
        self.max_steps = max_steps
        self._clock = clock
        self._started = clock()
        self._dangerous: list[re.Pattern[str]] = compile_patterns(
            policy.dangerous_output_patterns, re.IGNORECASE | re.MULTILINE
        )
        self._history: dict[str, deque[float]] = {}

    # ---------------------------------------------------------------- budget

    def restart(self) -> None:
        """Start the run clock again (e.g. when a queued run actually begins)."""
        self._started = self._clock()

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return self._clock() - self._started

    def check_budget(self, steps_done: int, total_tokens: int) -> list[Violation]:
        """Block violations for every budget the run has used up (empty: carry on)."""
        violations = []
        if steps_done >= self.max_steps:
            violations.append(
                Violation(
                    stage="tripwire",
                    rule="max_steps",
                    detail=f"The run has taken {steps_done} steps, its limit of {self.max_steps}.",
                    action="block",
                )
            )
        limit = self.policy.max_total_tokens
        if total_tokens >= limit:
            violations.append(
                Violation(
                    stage="tripwire",
                    rule="max_total_tokens",
                    detail=f"The run has used {total_tokens:,} tokens, its limit of {limit:,}.",
                    action="block",
                )
            )
        elapsed = self.elapsed
        if elapsed > self.policy.max_run_seconds:
            violations.append(
                Violation(
                    stage="tripwire",
                    rule="max_run_seconds",
                    detail=f"The run has lasted {elapsed:.1f} s, over its limit of {self.policy.max_run_seconds:g} s.",
                    action="block",
                )
            )
        return violations

    # ---------------------------------------------------------------- output

    def check_output(self, text: str) -> list[Violation]:
        """A block violation per dangerous pattern found in `text` (the text is not quoted)."""
        violations = []
        for index, pattern in enumerate(self._dangerous, 1):
            match = pattern.search(text)
            if match is not None:
                line = text.count("\n", 0, match.start()) + 1
                violations.append(
                    Violation(
                        stage="tripwire",
                        rule="dangerous_output",
                        detail=f"The output contains a dangerous command (pattern #{index}, line {line}), so it is blocked.",
                        action="block",
                    )
                )
        return violations

    # --------------------------------------------------------------- anomaly

    def seed(self, metric: str, values: Iterable[float]) -> None:
        """Add earlier values of `metric` (e.g. from past runs) to its history."""
        history = self._history.setdefault(metric, deque(maxlen=HISTORY_LIMIT))
        history.extend(float(v) for v in values if math.isfinite(v))

    def history(self, metric: str) -> list[float]:
        return list(self._history.get(metric, ()))

    def observe(self, metric: str, value: float) -> Violation | None:
        """Compare `value` with the history of `metric`, then add it to that history.

        Returns a "warn" violation `anomaly:<metric>` when the history has at
        least `anomaly_min_samples` values and `value` lies more than
        `anomaly_z` standard deviations from their mean. When the history is
        constant, any different value is an anomaly. Non-finite values are
        ignored.
        """
        value = float(value)
        if not math.isfinite(value):
            return None
        history = self._history.setdefault(metric, deque(maxlen=HISTORY_LIMIT))
        violation = self._judge(metric, value, history)
        history.append(value)
        return violation

    def _judge(self, metric: str, value: float, history: deque[float]) -> Violation | None:
        n = len(history)
        if n < self.policy.anomaly_min_samples:
            return None
        mean = math.fsum(history) / n
        variance = math.fsum((x - mean) ** 2 for x in history) / (n - 1)
        std = math.sqrt(variance)
        if std <= _REL_EPSILON * max(1.0, abs(mean)):
            if math.isclose(value, mean, rel_tol=1e-9, abs_tol=1e-12):
                return None
            detail = f"{metric} = {value:g} differs from its constant value {mean:g} over {n} samples."
        else:
            z = (value - mean) / std
            if abs(z) <= self.policy.anomaly_z:
                return None
            detail = (
                f"{metric} = {value:g} is {abs(z):.1f} standard deviations {'above' if z > 0 else 'below'} "
                f"its mean {mean:g} over {n} samples."
            )
        return Violation(stage="tripwire", rule=f"anomaly:{metric}", detail=detail, action="warn")
