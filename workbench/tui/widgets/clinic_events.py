"""The Clinic's run view: a run's summary and each stored event on a compact line or two.

Everything in a run (task, model output, tool arguments and results, error
messages) is untrusted: it is rendered as `rich.text.Text` built from cleaned
strings, never parsed as markup. Guardrail, tripwire and error events get a
CSS class so the stylesheet can highlight them.
"""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from workbench.engine.schemas import AgentRunRecord, RunEventRecord
from workbench.tui.safe import clean

#: longest model output / tool result shown inline (the rest is summarised)
MAX_SHOWN = 600


def cut(text: Any, limit: int = MAX_SHOWN) -> str:
    value = clean(text).strip()
    if len(value) > limit:
        value = f"{value[:limit]}… (+{len(value) - limit} chars)"
    return value.replace("\n", "\n    ")


def arguments_json(arguments: Any) -> str:
    try:
        return json.dumps(arguments, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return repr(arguments)


def duration(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 10:
        return f"{ms:.1f} ms"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def run_summary(run: AgentRunRecord) -> Text:
    """The run's header: task, agent, model, status, steps, tokens, duration, then the answer or error."""
    text = Text()
    text.append(f"{clean(run.id)}  ", style="bold")
    text.append(f"{clean(run.status)}", style="bold red" if run.status in ("failed", "blocked") else "bold")
    text.append(
        f" · agent {clean(run.agent_id)} · model {clean(run.model)} · {run.steps} steps · "
        f"{run.prompt_tokens}+{run.completion_tokens} tokens · {duration(run.duration_ms)}\n"
    )
    text.append("Task: ", style="bold")
    text.append(cut(run.task) + "\n")
    if run.answer:
        text.append("Answer: ", style="bold green")
        text.append(cut(run.answer) + "\n")
    if run.error:
        text.append("Error: ", style="bold red")
        text.append(cut(run.error) + "\n")
    text.rstrip()
    return text


def _line(mark: str, head: str, style: str = "bold") -> Text:
    text = Text()
    text.append(f"{mark} ", style=style)
    text.append(clean(head), style=style)
    return text


def describe_event(record: RunEventRecord) -> tuple[Text, str]:
    """One stored event as text and its CSS class (ev-<kind>)."""
    p, kind = record.payload, record.type
    step = p.get("step")
    if kind == "agent_run_started":
        text = _line("▶", f"run started · agent {p.get('agent_id')} · model {p.get('model')}")
        return text, "ev-run"
    if kind == "step_started":
        offered = ", ".join(clean(t) for t in p.get("offered_tools") or []) or "none"
        return _line("┌", f"step {step} · tools offered: {offered}"), "ev-step"
    if kind == "step_finished":
        text = _line(
            "└",
            f"step {step} model call · {p.get('action')} · {duration(p.get('model_ms'))} model "
            f"+ {duration(p.get('overhead_ms'))} overhead · {p.get('prompt_tokens')}+"
            f"{p.get('completion_tokens')} tokens",
        )
        text.append("\n  output: ", style="dim")
        text.append(cut(p.get("output", "")))
        return text, "ev-step"
    if kind == "tool_call_proposed":
        text = _line("│ →", f"call {p.get('tool')} ({p.get('permission')})", "bold cyan")
        text.append("\n  arguments: ", style="dim")
        text.append(cut(arguments_json(p.get("arguments"))))
        return text, "ev-tool"
    if kind == "tool_result":
        execution = p.get("execution") or {}
        ok = execution.get("ok")
        text = _line(
            "│ ←",
            f"{execution.get('tool')} {execution.get('status')} · {duration(execution.get('duration_ms'))}",
            "bold green" if ok else "bold red",
        )
        if execution.get("output") is not None:
            text.append("\n  result: ", style="dim")
            text.append(cut(execution["output"]))
        if execution.get("error"):
            text.append("\n  error: ", style="dim")
            text.append(cut(execution["error"]))
        return text, "ev-tool" if ok else "ev-error"
    if kind in ("approval_requested", "approval_resolved"):
        approval = p.get("approval") or {}
        verb = "approval requested" if kind == "approval_requested" else f"approval {approval.get('status')}"
        text = _line("│ ?", f"{verb} · {approval.get('tool')} ({approval.get('permission')})", "bold yellow")
        if approval.get("reason"):
            text.append(f"\n  reason: {cut(approval['reason'])}")
        return text, "ev-approval"
    if kind == "guardrail":
        violation = p.get("violation") or {}
        tripwire = violation.get("stage") == "tripwire"
        label = "TRIPWIRE" if tripwire else "GUARDRAIL"
        text = _line(
            "⚠",
            f"{label} {violation.get('action')} · {violation.get('rule')} "
            f"(stage {violation.get('stage')}, step {step})",
            "bold",
        )
        text.append("\n  " + cut(violation.get("detail", "")))
        return text, "ev-tripwire" if tripwire else "ev-guardrail"
    if kind == "agent_run_finished":
        run = p.get("run") or {}
        status = run.get("status")
        text = _line(
            "■",
            f"run {status} · {run.get('steps')} steps · {duration(run.get('duration_ms'))}",
            "bold" if status == "finished" else "bold red",
        )
        return text, "ev-run" if status == "finished" else "ev-error"
    if kind == "token":
        return _line("│", f"tokens: {cut(p.get('text', ''), 120)}", "dim"), "ev-step"
    return _line("·", f"{kind}: {cut(arguments_json(p))}", "dim"), "ev-other"


class RunView(VerticalScroll):
    """The selected run: its summary, then one Static per event."""

    def compose(self) -> ComposeResult:
        yield Static("Select a run to see its steps, model calls and tool calls.", id="run-summary", markup=False)

    async def show(self, run: AgentRunRecord | None, events: list[RunEventRecord]) -> None:
        """Replace the view with `run` and its events (keeps the scroll position at the end while running)."""
        follow = self.is_vertical_scroll_end
        await self.query(".run-event").remove()
        summary = self.query_one("#run-summary", Static)
        if run is None:
            summary.update("Select a run to see its steps, model calls and tool calls.")
            return
        summary.update(run_summary(run))
        widgets = []
        for record in events:
            text, css = describe_event(record)
            widgets.append(Static(text, classes=f"run-event {css}", markup=False))
        await self.mount_all(widgets)
        if run.status == "running" and follow:
            self.scroll_end(animate=False)
