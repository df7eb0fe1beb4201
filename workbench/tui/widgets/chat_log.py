"""The conversation pane: user messages, Markdown answers (streamed), tool calls and results, notes.

The log only displays what it is given; the screen talks to the engine. All
text here is untrusted (model output, tool arguments and output, stored
messages): Markdown is rendered with links inert (`open_links=False`), plain
text goes through `plain()`, and control characters (terminal escape
sequences) are removed before anything is shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Collapsible, Markdown, Static

from workbench.tui.safe import clean, one_line, plain
from workbench.tui.widgets.approval import pretty_arguments

if TYPE_CHECKING:
    from textual.widgets.markdown import MarkdownStream

    from workbench.engine.schemas import Citation, ToolExecution


#: agent events shown as notes or tool blocks by `ChatLog.show_agent_event` with nothing else to do
AGENT_STEP_EVENTS = frozenset(
    {"agent_run_started", "step_started", "tool_call_proposed", "approval_resolved", "tool_result", "guardrail"}
)


class UserMessage(Static):
    """What the user sent, literally."""

    def __init__(self, text: str) -> None:
        super().__init__(plain(text), markup=False, classes="chat-user")
        self.source_text = clean(text)


class Note(Static):
    """A one-line event in the log (a step, a guardrail, an approval decision, an error)."""

    def __init__(self, text: str, kind: str = "info") -> None:
        super().__init__(plain(text), markup=False, classes=f"chat-note note-{kind}")
        self.source_text = clean(text)


class CitationSelected(Message):
    """A citation reference was clicked."""

    def __init__(self, citation: Citation, text: str | None) -> None:
        super().__init__()
        self.citation = citation
        self.text = text


class CitationButton(Button):
    def __init__(self, citation: Citation, text: str | None) -> None:
        name = citation.source.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or citation.source
        super().__init__(plain(f"[{citation.n}] {one_line(name, 40)}"), classes="citation")
        self.citation = citation
        self.chunk_text = text

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(CitationSelected(self.citation, self.chunk_text))


class AssistantMessage(Vertical):
    """One answer: Markdown (streamed while it arrives), then a line of facts about the turn."""

    def __init__(self, text: str = "", label: str = "assistant", meta: str = "") -> None:
        super().__init__(classes="chat-assistant")
        self.label = label
        self.source_text = clean(text)
        self.meta = clean(meta)
        #: the answer is complete (finished, stopped or failed)
        self.finished = False
        self._stream: MarkdownStream | None = None

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(plain(self.label), markup=False, classes="chat-role")
        yield Markdown(self.source_text, open_links=False, classes="chat-markdown")
        meta = Static(plain(self.meta), markup=False, classes="chat-meta")
        meta.display = bool(self.meta)
        yield meta

    @property
    def markdown(self) -> Markdown:
        return self.query_one(Markdown)

    async def write(self, fragment: str) -> None:
        """Append streamed text (rendered in batches so long answers stay smooth)."""
        fragment = clean(fragment)
        if not fragment:
            return
        if self._stream is None:
            self._stream = Markdown.get_stream(self.markdown)
        self.source_text += fragment
        await self._stream.write(fragment)

    async def finish(self, meta: str = "", text: str | None = None) -> None:
        """End the stream; `text` replaces what was streamed (e.g. a final answer)."""
        self.finished = True
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        if text is not None and clean(text) != self.source_text:
            self.source_text = clean(text)
            await self.markdown.update(self.source_text)
        self.set_meta(meta)

    def set_meta(self, meta: str) -> None:
        self.meta = clean(meta)
        meta_line = self.query_one(".chat-meta", Static)
        meta_line.update(plain(self.meta))
        meta_line.display = bool(self.meta)

    def add_citations(self, citations: list[Citation], texts: dict[int, str]) -> None:
        if citations:
            self.mount(Horizontal(*(CitationButton(c, texts.get(c.n)) for c in citations), classes="citations"))


class ToolBlock(Collapsible):
    """A tool call or its result: a one-line title, the details folded."""

    def __init__(self, title: str, body: str, kind: str) -> None:
        super().__init__(
            Static(plain(body), markup=False, classes="tool-body"),
            title=Content(one_line(title, 100)),
            collapsed=True,
            classes=f"tool-block tool-{kind}",
        )
        self.source_text = clean(title) + "\n" + clean(body)


def execution_summary(execution: ToolExecution) -> tuple[str, str]:
    """(title, body) of a tool result."""
    mark = "✓" if execution.ok else "✗"
    title = f"{mark} {execution.tool} → {execution.status} ({execution.duration_ms:.0f} ms)"
    body = execution.output if execution.ok else (execution.error or execution.output or "")
    preview = one_line(body, 60)
    return (f"{title}: {preview}" if preview else title), body or ""


class ChatLog(VerticalScroll):
    """The scrolling conversation; stays at the bottom while new content arrives."""

    def on_mount(self) -> None:
        self.anchor()

    async def clear_log(self) -> None:
        await self.remove_children()

    def add_user(self, text: str) -> UserMessage:
        message = UserMessage(text)
        self.mount(message)
        return message

    async def add_assistant(self, text: str = "", label: str = "assistant", meta: str = "") -> AssistantMessage:
        """Mount an answer (mounted on return, so it can stream at once)."""
        message = AssistantMessage(text, label, meta)
        await self.mount(message)
        return message

    async def show_messages(self, messages: list[tuple[str, str, str, str]]) -> None:
        """Replace the log with stored (role, content, label, facts line) messages, in one batch."""
        await self.remove_children()
        widgets: list[Widget] = []
        for role, content, label, meta in messages:
            if role == "user":
                widgets.append(UserMessage(content))
            elif role == "assistant":
                message = AssistantMessage(content, label, meta)
                message.finished = True
                widgets.append(message)
            else:
                widgets.append(Note(f"{role}: {content}", "system"))
        await self.mount_all(widgets)
        self.scroll_end(animate=False)

    def add_note(self, text: str, kind: str = "info") -> Note:
        note = Note(text, kind)
        self.mount(note)
        return note

    def add_tool_call(self, step: int, tool: str, arguments: dict[str, Any], permission: str) -> ToolBlock:
        title = f"→ step {step}: {tool}({one_line(pretty_arguments(arguments), 60)}) [{permission}]"
        block = ToolBlock(
            title, f"tool: {tool}\npermission: {permission}\narguments:\n" + pretty_arguments(arguments), "call"
        )
        self.mount(block)
        return block

    def add_tool_result(self, execution: ToolExecution) -> ToolBlock:
        title, body = execution_summary(execution)
        block = ToolBlock(title, body, "ok" if execution.ok else "error")
        self.mount(block)
        return block

    def show_agent_event(self, event: Any) -> None:
        """One event of an agent run as a note or a tool block (the answer is the screen's)."""
        kind = event.type
        if kind == "agent_run_started":
            self.add_note(f"run {event.run_id} started on {event.model}", "step")
        elif kind == "step_started":
            offered = ", ".join(event.offered_tools) or "none (answer now)"
            self.add_note(f"step {event.step} · tools offered: {offered}", "step")
        elif kind == "tool_call_proposed":
            self.add_tool_call(event.step, event.tool, event.arguments, event.permission)
        elif kind == "approval_requested":
            self.add_note(f"… waiting for your approval of {event.approval.tool}", "approval")
        elif kind == "approval_resolved":
            reason = f" ({event.approval.reason})" if event.approval.reason else ""
            self.add_note(f"approval {event.approval.status}: {event.approval.tool}{reason}", "approval")
        elif kind == "tool_result":
            self.add_tool_result(event.execution)
        elif kind == "guardrail":
            v = event.violation
            self.add_note(f"! guardrail {v.stage}/{v.rule} ({v.action}): {v.detail}", "guardrail")
        elif kind == "step_finished":
            self.add_note(
                f"step {event.step} {event.action} · model {event.model_ms:.0f} ms · "
                f"{event.prompt_tokens}+{event.completion_tokens} tokens",
                "step",
            )
