"""The Chat screen: sessions on the left, the conversation on the right.

A message goes to plain chat (streamed tokens, stored in the session), to an
agent run (tool calls, results and approvals inline; the run is recorded in
the Clinic) or to a knowledge collection's cited answer, depending on the
agent picker. Each stream is consumed entirely inside one thread worker
(`chat_stream.py`), which batches tokens every ~50 ms and posts messages back;
this screen owns the UI state.
"""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, OptionList, Static

from workbench.tui.safe import clean, one_line
from workbench.tui.screens.base import WorkbenchScreen
from workbench.tui.widgets.approval import ApprovalDecision, ApprovalModal
from workbench.tui.widgets.chat_commands import CHAT_COMMANDS
from workbench.tui.widgets.chat_dialogs import CitationModal, TextPromptModal
from workbench.tui.widgets.chat_log import AGENT_STEP_EVENTS, AssistantMessage, ChatLog, CitationSelected
from workbench.tui.widgets.chat_prompt import PromptArea
from workbench.tui.widgets.chat_sessions import SessionOptions, SessionsPane
from workbench.tui.widgets.chat_stream import (
    StreamEnded,
    StreamEvent,
    TokensStreamed,
    agent_meta,
    answer_meta,
    answer_text,
    consume_agent,
    consume_answer,
    consume_chat,
    generation_meta,
    stored_meta,
)
from workbench.tui.widgets.confirm import ConfirmDialog
from workbench.tui.widgets.palette import ScreenCommands
from workbench.tui.widgets.pickers import AgentPicker, ModelPicker

if TYPE_CHECKING:
    from textual.worker import Worker

    from workbench.engine.schemas import MessageRecord, Session

WELCOME = (
    "Type a message and press Enter (Ctrl+J for a new line). Pick a model (Ctrl+O), an agent or a "
    "knowledge collection (Ctrl+G) above. Ctrl+N starts a new chat, Ctrl+F searches chats, Esc stops "
    "a reply, Ctrl+P lists every command."
)


class ChatScreen(WorkbenchScreen):
    TITLE_TEXT = "Chat"
    CSS_PATH = "chat.tcss"
    COMMANDS = {ScreenCommands}
    PALETTE = CHAT_COMMANDS
    BINDINGS = [
        Binding("ctrl+n", "new_session", "New chat", show=True),
        Binding("ctrl+r", "rename_session", "Rename", show=True),
        Binding("escape", "stop", "Stop", show=True),
        # in the command palette and the widgets' placeholders; the footer keeps room for the screen keys
        Binding("ctrl+f", "search_sessions", "Search", show=False),
        Binding("ctrl+o", "pick_model", "Model", show=False),
        Binding("ctrl+g", "pick_agent", "Agent", show=False),
    ]

    #: max_tokens of a plain chat turn (None: the engine's default)
    max_tokens: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.session_id: str | None = None
        self._sessions: list[Session] = []
        self._worker: Worker | None = None
        self._turn = 0
        #: the answer being written (for an agent run: created when the run finishes, after its steps)
        self._reply: AssistantMessage | None = None
        self._steps: list[Any] = []
        self._turn_started = 0.0
        #: each model's context window (ModelInfo.n_ctx; None when a remote provider decides)
        self._n_ctx: dict[str, int | None] = {}
        self._approval: ApprovalModal | None = None

    # ------------------------------------------------------------------ layout

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="chat-main"):
            yield SessionsPane(id="sessions-pane")
            with Vertical(id="conversation-pane"):
                with Horizontal(id="chat-pickers"):
                    model = ModelPicker(id="model-picker")
                    model.tooltip = "The model for the next message (Ctrl+O)"
                    yield model
                    agent = AgentPicker(id="agent-picker")
                    agent.tooltip = "Plain chat, an agent run, or a cited answer from a collection (Ctrl+G)"
                    yield agent
                yield ChatLog(id="chat-log")
                yield Static("", id="chat-state", markup=False)
                yield PromptArea(id="prompt")

    @property
    def log_view(self) -> ChatLog:
        return self.query_one("#chat-log", ChatLog)

    def _log_attached(self) -> bool:
        """False while the app closes: stream messages still arrive but nothing may be mounted."""
        if not self.is_attached:
            return False
        logs = self.query("#chat-log")
        return bool(logs) and logs.first().is_attached

    def on_mount(self) -> None:
        super().on_mount()
        self.log_view.add_note(WELCOME, "hint")
        self.query_one("#prompt", PromptArea).focus()

    def engine_ready(self) -> None:
        self.refresh_sessions()
        self.refresh_pickers()

    def on_screen_resume(self) -> None:
        # agents, collections or the default model may have changed on another screen
        if getattr(self, "_engine_seen", False):
            self.refresh_pickers()

    def _context_of(self, model: str | None) -> int | None:
        return self._n_ctx.get(model) if model else None

    @property
    def streaming(self) -> bool:
        return self._worker is not None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.streaming  # "Esc Stop" is in the footer only while something runs
        return True

    def _set_state(self, text: str) -> None:
        self.query_one("#chat-state", Static).update(clean(text))

    # ------------------------------------------------------------- pickers

    def refresh_pickers(self) -> None:
        self.call_engine(lambda e: e.list_models(), self._show_models, group="chat-setup")
        self.call_engine(
            lambda e: (e.list_agents(per_page=100, sort="name").items, e.list_collections()),
            self._show_agents,
            group="chat-setup",
        )

    def _show_models(self, models: list[Any]) -> None:
        self._n_ctx = {m.id: m.n_ctx for m in models}
        current = next((s.model for s in self._sessions if s.id == self.session_id), None)
        self.query_one(ModelPicker).set_models(models, current)

    def _show_agents(self, found: tuple[list[Any], list[Any]]) -> None:
        self.query_one(AgentPicker).set_choices(*found)

    def action_pick_model(self) -> None:
        self.query_one(ModelPicker).focus()

    def action_pick_agent(self) -> None:
        self.query_one(AgentPicker).focus()
        self.refresh_pickers()

    def action_focus_prompt(self) -> None:
        self.query_one("#prompt", PromptArea).focus()

    # ------------------------------------------------------------- sessions

    def refresh_sessions(self, select: str | None = None) -> None:
        query = self.query_one(SessionsPane).query_text
        self.call_engine(
            lambda e: e.list_sessions(limit=200, query=query or None),
            partial(self._show_sessions, query, select),
            group="sessions",
        )

    def _show_sessions(self, query: str, select: str | None, sessions: list[Session]) -> None:
        if query != self.query_one(SessionsPane).query_text:
            return  # a newer search is on its way
        self._sessions = sessions
        if select is not None:
            self.session_id = select
        self.query_one(SessionsPane).show_sessions(sessions, self.session_id)

    @on(Input.Changed, "#session-search")
    def _search_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self.wb.engine is not None:
            self.refresh_sessions()

    def action_search_sessions(self) -> None:
        self.query_one("#session-search", Input).focus()

    @on(OptionList.OptionSelected, "#session-list")
    def _session_chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.open_session(event.option.id)

    def open_session(self, session_id: str) -> None:
        if self.streaming:
            self.notify("A reply is in progress: stop it (Esc) before opening another chat.", severity="warning")
            return
        self.call_engine(
            lambda e: (e.get_session(session_id), e.session_messages(session_id)), self._show_session, group="sessions"
        )

    async def _show_session(self, found: tuple[Session, list[MessageRecord]]) -> None:
        session, messages = found
        self.session_id = session.id
        log = self.log_view
        await log.show_messages(
            [
                (
                    m.role,
                    m.content,
                    "agent" if m.run_id else "assistant",
                    stored_meta(m, self._context_of(m.generation.model if m.generation else None)),
                )
                for m in messages
            ]
        )
        if not messages:
            log.add_note(f"“{one_line(session.title, 60)}” has no messages yet. " + WELCOME, "hint")
        if session.model:
            self.query_one(ModelPicker).select_model(session.model)
        self.query_one(SessionsPane).show_sessions(self._sessions, self.session_id)
        self.sub_title = f"Chat · {one_line(session.title, 50)}"

    def action_new_session(self) -> None:
        if self.streaming:
            self.notify("A reply is in progress: stop it (Esc) first.", severity="warning")
            return
        model = self.query_one(ModelPicker).model
        self.call_engine(lambda e: e.create_session("New chat", model=model), self._session_created, group="sessions")

    def _session_created(self, session: Session) -> None:
        self.query_one("#session-search", Input).value = ""
        self.refresh_sessions(select=session.id)
        self.call_later(self._show_session, (session, []))
        self.action_focus_prompt()

    def _current_session(self) -> Session | None:
        return next((s for s in self._sessions if s.id == self.session_id), None)

    def _target_session(self) -> Session | None:
        """The session an action applies to: the one highlighted in the list when it has focus, else the open one."""
        options = self.query_one(SessionOptions)
        if self.focused is options and options.highlighted is not None:
            option_id = options.get_option_at_index(options.highlighted).id
            return next((s for s in self._sessions if s.id == option_id), None)
        return self._current_session()

    def action_rename_session(self) -> None:
        session = self._target_session()
        if session is None:
            self.notify("Open or highlight a chat to rename it.", severity="warning")
            return
        self.app.push_screen(
            TextPromptModal("Rename chat", session.title, "A title"), partial(self._rename, session.id)
        )

    def _rename(self, session_id: str, title: str | None) -> None:
        if title:
            self.call_engine(
                lambda e: e.rename_session(session_id, title), lambda s: self.refresh_sessions(), group="sessions"
            )

    def action_delete_session(self) -> None:
        session = self._target_session()
        if session is None:
            self.notify("Open or highlight a chat to delete it.", severity="warning")
            return
        if self.streaming and session.id == self.session_id:
            self.notify("A reply is being written to this chat: stop it (Esc) first.", severity="warning")
            return
        question = f"Delete the chat “{one_line(session.title, 60)}” and its {session.message_count} messages?"
        self.app.push_screen(ConfirmDialog(question), partial(self._delete, session.id))

    def _delete(self, session_id: str, confirmed: bool | None) -> None:
        if confirmed:
            self.call_engine(
                lambda e: e.delete_session(session_id), lambda _: self._deleted(session_id), group="sessions"
            )

    async def _deleted(self, session_id: str) -> None:
        if session_id == self.session_id:
            self.session_id = None
            await self.log_view.clear_log()
            self.log_view.add_note(WELCOME, "hint")
            self.sub_title = "Chat"
        self.refresh_sessions()
        self.notify("Chat deleted.")

    # ----------------------------------------------------------------- send

    @on(PromptArea.Submitted)
    async def _prompt_submitted(self, event: PromptArea.Submitted) -> None:
        event.stop()
        await self.send(event.text)

    async def send(self, text: str) -> None:
        """Send `text` to plain chat, the picked agent or the picked knowledge collection."""
        if not text.strip():
            return
        if self.wb.engine is None:
            self.notify("The engine is still opening; try again in a moment.", severity="warning")
            return
        if self.streaming:
            self.notify("A reply is in progress: wait for it or stop it (Esc).", severity="warning")
            return
        self.query_one("#prompt", PromptArea).clear()
        model = self.query_one(ModelPicker).model
        picker = self.query_one(AgentPicker)
        log = self.log_view
        log.add_user(text)
        self._turn += 1
        self._turn_started = time.monotonic()
        engine = self.engine
        self._steps = []
        self._reply = None
        if picker.agent_id is not None:
            request = {
                "agent_id": picker.agent_id,
                "task": text,
                "session_id": self.session_id,
                **({"model": model} if model else {}),
            }
            work = partial(consume_agent, engine, self, self._turn, request)
            self._set_state(f"Agent {picker.agent_id} is working… (Esc stops)")
        elif picker.collection is not None:
            self._reply = await log.add_assistant(label=f"knowledge {picker.collection}")
            request = {"question": text, "collection": picker.collection, **({"model": model} if model else {})}
            work = partial(consume_answer, engine, self, self._turn, request)
            self._set_state(f"Searching {picker.collection} and writing a cited answer…")
        else:
            self._reply = await log.add_assistant(label="assistant")
            request = {
                "messages": [{"role": "user", "content": text}],
                "session_id": self.session_id,
                **({"model": model} if model else {}),
                **({"params": {"max_tokens": self.max_tokens}} if self.max_tokens else {}),
            }
            work = partial(consume_chat, engine, self, self._turn, request)
            self._set_state("Generating… (Esc stops)")
        self._worker = self.run_worker(work, thread=True, group="chat-stream", name="chat stream")
        self.refresh_bindings()

    def action_stop(self) -> None:
        if self._worker is None:
            return
        self._worker.cancel()
        self._set_state("Stopping…")

    # -------------------------------------------------------- stream messages

    async def on_tokens_streamed(self, message: TokensStreamed) -> None:
        if message.turn == self._turn and self._reply is not None and self._reply.is_attached:
            await self._reply.write(message.text)

    async def on_stream_event(self, message: StreamEvent) -> None:
        if message.turn != self._turn or self._worker is None or not self._log_attached():
            return  # a stale turn, or the app is closing (a cancelled run still reports its end)
        event, log = message.event, self.log_view
        kind = getattr(event, "type", None) or "answer"
        if kind in ("run_finished", "run_failed", "answer") and self._reply is None:
            self._reply = await log.add_assistant()
        if kind in ("run_started", "agent_run_started") and event.session_id and event.session_id != self.session_id:
            self.session_id = event.session_id
        elif kind == "run_finished":
            await self._reply.finish(
                generation_meta(event.result, self._context_of(event.result.model)), text=event.result.text
            )
        elif kind in AGENT_STEP_EVENTS:
            log.show_agent_event(event)
        elif kind == "run_failed":
            await self._reply.finish(f"failed: {event.error}")
            self.notify(clean(event.error), title="The reply failed", severity="error", markup=False)
        elif kind == "approval_requested":
            log.show_agent_event(event)
            self._approval = ApprovalModal(event.approval)
            self.app.push_screen(self._approval, self._approval_decided)
        elif kind == "step_finished":
            log.show_agent_event(event)
            self._steps.append(event)
        elif kind == "agent_run_finished":
            run = event.run
            text = run.answer or (f"The run ended: {run.status}." + (f" {run.error}" if run.error else ""))
            last_prompt = self._steps[-1].prompt_tokens if self._steps else 0
            self._reply = await log.add_assistant(label=f"agent {run.agent_id}")
            await self._reply.finish(agent_meta(run, last_prompt, self._context_of(run.model)), text=text)
        elif kind == "answer":
            await self._reply.finish(answer_meta(event, time.monotonic() - self._turn_started), text=answer_text(event))
            texts = {n: hit.text for n, hit in enumerate(event.hits, start=1)}  # [n] is the n-th hit
            self._reply.add_citations(event.citations, {c.n: texts.get(c.n, c.snippet) for c in event.citations})

    async def on_stream_ended(self, message: StreamEnded) -> None:
        if message.turn != self._turn:
            return
        reply, self._reply, self._worker = self._reply, None, None
        self.refresh_bindings()
        self._set_state("")
        if self._approval is not None and self._approval.is_attached:
            self._approval.dismiss(None)  # the run ended (stopped): nothing is left to decide
        if not self._log_attached():
            return  # the app is closing: the run was cancelled with it and nothing is left to show
        elapsed = time.monotonic() - self._turn_started
        if message.cancelled and (reply is None or not reply.finished):
            reply = reply or await self.log_view.add_assistant()
            await reply.finish(
                f"■ stopped after {message.tokens} tokens, {elapsed:.1f} s · finish_reason "
                f"cancelled (the partial answer was kept)"
            )
        elif message.error is not None:
            reply = reply or await self.log_view.add_assistant()
            await reply.finish(f"failed: {one_line(message.error, 200)}")
            self.show_error(message.error)
        self.refresh_sessions()

    def _approval_decided(self, decision: ApprovalDecision | None) -> None:
        self._approval = None
        if decision is None and not self.streaming:
            return
        if decision is None:
            self.log_view.add_note(
                "The approval is still pending: decide in the Clinic, or stop the run (Esc).", "approval"
            )
            return
        self.call_engine(
            lambda e: e.resolve_approval(decision.approval_id, decision.approve, decision.reason), group="approval"
        )

    def on_citation_selected(self, message: CitationSelected) -> None:
        message.stop()
        self.app.push_screen(CitationModal(message.citation, message.text))
