"""The Chat screen over a real engine: streaming, stop, sessions, agent runs with approvals, citations, injection."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.tui.conftest import SIZE, make_app, settle, wait_for

INJECTION = "Look: [@click=app.quit]x[/] and [bold red]loud[/bold red] and \x1b]0;pwned\x07 done"
#: what a person sees: markup literal, the escape sequence's control characters removed
INJECTION_SHOWN = ("[@click=app.quit]x[/]", "[bold red]loud[/bold red]", "]0;pwned")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def rendered(widget: Any) -> str:
    """The text a widget and its descendants actually draw (what the terminal shows)."""
    from textual.geometry import Region

    parts = []
    for node in [widget, *widget.query("*")]:
        if node.size.area == 0 or not node.display:
            continue
        lines = node.render_lines(Region(0, 0, node.size.width, node.size.height))
        parts.append("\n".join(line.text.rstrip() for line in lines))
    return "\n".join(parts)


def record(engine: Any, session_id: str, user: str, answer: str) -> None:
    """Store one fixed turn in a session, as the engine does after a chat turn."""
    from workbench.engine.schemas import ChatMessage, GenerationResult, Usage

    result = GenerationResult(
        id=f"gen_{session_id}_{len(engine.session_messages(session_id))}",
        session_id=session_id,
        model="SmolLM2-135M-Instruct.Q4_1",
        provider="llama.cpp",
        text=answer,
        finish_reason="stop",
        usage=Usage(prompt_tokens=12, completion_tokens=8, total_tokens=20),
        latency_ms=100.0,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    engine.conversations.record_turn(session_id, [ChatMessage(role="user", content=user)], result, None)


async def type_and_send(pilot: Any, text: str) -> None:
    prompt = pilot.app.screen.query_one("#prompt")
    prompt.focus()
    prompt.text = text
    await pilot.press("enter")


# ------------------------------------------------------------------ chat


def test_send_streams_a_markdown_reply_and_stores_the_session(tui_engine):
    async def go():
        app = make_app(tui_engine)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            screen.max_tokens = 16
            await type_and_send(pilot, "Name one colour.")
            assert screen.query_one("#prompt").text == ""  # sent and cleared
            await wait_for(pilot, lambda: screen._worker is None, what="the reply")
            await settle(pilot)
            reply = screen.query(".chat-assistant").last()
            assert reply.finished and reply.source_text.strip()
            meta = rendered(reply.query_one(".chat-meta"))
            assert "tokens out" in meta and "context" in meta and "/8192" in meta
            # rendered as Markdown, with the streamed text on screen
            assert reply.query_one("Markdown").source.strip() == reply.source_text.strip()
            sessions = tui_engine.list_sessions()
            assert len(sessions) == 1 and sessions[0].id == screen.session_id
            stored = tui_engine.session_messages(screen.session_id)
            assert [m.role for m in stored] == ["user", "assistant"]
            assert stored[0].content == "Name one colour."
            assert stored[1].content.strip() == reply.source_text.strip()
            assert "Name one colour." in rendered(screen.query_one("#session-list"))
            # Reopened, the answer shows the same facts line it showed live.
            live_meta = meta
            screen.open_session(screen.session_id)
            await wait_for(pilot, lambda: screen.query(".chat-assistant").last() is not reply, what="the reopened chat")
            await settle(pilot)
            assert rendered(screen.query(".chat-assistant").last().query_one(".chat-meta")) == live_meta

    run(go())


def test_stop_keeps_the_partial_answer_as_cancelled(tui_engine):
    async def go():
        app = make_app(tui_engine)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            screen.max_tokens = 400
            await type_and_send(pilot, "Write a long story about a dragon who learns to bake bread.")
            await wait_for(
                pilot,
                lambda: screen._reply is not None and len(screen._reply.source_text) > 10,
                what="the first tokens",
            )
            reply = screen._reply
            await pilot.press("escape")
            await wait_for(pilot, lambda: screen._worker is None, what="the stop")
            await settle(pilot)
            assert reply.finished
            assert "finish_reason cancelled" in rendered(reply.query_one(".chat-meta"))
            stored = tui_engine.session_messages(screen.session_id)
            assert stored[-1].role == "assistant" and stored[-1].content.startswith(reply.source_text.strip()[:10])
            generation = tui_engine.conversations.generation(stored[-1].generation_id)
            assert generation["finish_reason"] == "cancelled"
            assert generation["completion_tokens"] < 400

    run(go())


def test_quitting_mid_stream_exits_and_keeps_the_partial_answer(tui_engine):
    import time

    quit_at: list[float] = []

    async def go():
        app = make_app(tui_engine)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            screen.max_tokens = 400
            await type_and_send(pilot, "Write a long poem about the sea.")
            await wait_for(
                pilot, lambda: screen._reply is not None and screen._reply.source_text != "", what="the first tokens"
            )
            quit_at.append(time.monotonic())
            await pilot.press("ctrl+q")
        return app

    # asyncio.run returns only once the worker threads have ended: the stream worker must stop promptly
    app = run(go())
    assert time.monotonic() - quit_at[0] < 20
    assert not app.is_running
    sessions = tui_engine.list_sessions()
    assert len(sessions) == 1
    stored = tui_engine.session_messages(sessions[0].id)
    generation = tui_engine.conversations.generation(stored[-1].generation_id)
    assert stored[-1].role == "assistant" and generation["finish_reason"] == "cancelled"


# -------------------------------------------------------------- sessions


def test_rename_delete_and_search_sessions(tui_engine):
    first = tui_engine.create_session("Planning the trip")
    second = tui_engine.create_session("Groceries")
    record(tui_engine, second.id, "What about the quokka?", "Quokkas live on Rottnest.")

    async def go():
        app = make_app(tui_engine)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            listing = screen.query_one("#session-list")
            assert listing.option_count == 2

            # search: titles and message text
            await pilot.press("ctrl+f")
            await pilot.press(*"quokka")
            await wait_for(pilot, lambda: listing.option_count == 1, what="the search")
            assert listing.get_option_at_index(0).id == second.id
            screen.query_one("#session-search").value = ""
            await wait_for(pilot, lambda: listing.option_count == 2, what="the full list")

            # open a session: its stored messages show
            listing.focus()
            listing.highlighted = [listing.get_option_at_index(i).id for i in range(2)].index(second.id)
            await pilot.press("enter")
            await wait_for(pilot, lambda: screen.session_id == second.id, what="the open session")
            await settle(pilot)
            assert "Quokkas live on Rottnest." in rendered(screen.query_one("#chat-log"))

            # rename through the modal
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: type(app.screen).__name__ == "TextPromptModal", what="rename")
            app.screen.query_one("#prompt-value").value = "Island animals"
            await pilot.press("enter")
            await settle(pilot)
            assert tui_engine.get_session(second.id).title == "Island animals"
            assert "Island animals" in rendered(listing)

            # delete with confirmation: cancel first, then confirm
            listing.focus()
            listing.highlighted = [listing.get_option_at_index(i).id for i in range(2)].index(first.id)
            await pilot.press("delete")
            await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog", what="confirm")
            await pilot.click("#confirm-no")
            await settle(pilot)
            assert {s.id for s in tui_engine.list_sessions()} == {first.id, second.id}
            listing.focus()
            await pilot.press("delete")
            await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog", what="confirm")
            await pilot.click("#confirm-yes")
            await settle(pilot)
            assert [s.id for s in tui_engine.list_sessions()] == [second.id]
            assert listing.option_count == 1
            assert screen.session_id == second.id  # the open chat stays open

            # new chat
            await pilot.press("ctrl+n")
            await settle(pilot)
            assert len(tui_engine.list_sessions()) == 2 and screen.session_id != second.id
            assert tui_engine.get_session(screen.session_id).title == "New chat"

    run(go())


def test_prompt_keys_screen_keys_and_command_palette(tui_engine):
    async def go():
        app = make_app(tui_engine)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            prompt = app.screen.query_one("#prompt")
            assert app.focused is prompt
            await pilot.press("a", "ctrl+j", "b")
            assert prompt.text == "a\nb"  # Ctrl+J is a line break, not a send
            assert tui_engine.list_sessions() == []
            await pilot.press("f6")  # the TextArea's own F6 must not swallow the screen key
            assert type(app.screen).__name__ == "SettingsScreen"
            await pilot.press("f1")
            assert type(app.screen).__name__ == "ChatScreen"
            await pilot.press("ctrl+p")
            await pilot.press(*"new chat")
            await pilot.pause(0.5)
            await pilot.press("enter")
            await settle(pilot)
            assert [s.title for s in tui_engine.list_sessions()] == ["New chat"]
            assert app.screen.session_id == tui_engine.list_sessions()[0].id

    run(go())


# ---------------------------------------------------------- agent runs


@pytest.fixture
def workspace(tui_engine, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "todo.md").write_text("- buy milk\n- call Bob\n")
    tui_engine.add_workspace_root(str(root))
    return root


def _writer(engine: Any) -> str:
    """The integration tests' writer agent; one step (the write) keeps the run short, and this wording
    makes the small default model propose write_file(path="shopping.txt", content=...)."""
    engine.create_agent({"id": "writer", "name": "Writer", "tools": ["write_file"], "max_steps": 1})
    return "Call write_file with path shopping.txt and content buy milk."


async def _agent_turn(pilot: Any, task: str, decide: str) -> Any:
    """Send `task` to the writer agent, answer the approval modal with key `decide`; return the modal."""
    app = pilot.app
    screen = app.screen
    picker = screen.query_one("#agent-picker")
    await wait_for(pilot, lambda: "agent:writer" in picker.choices, what="the agent picker")
    picker.value = "agent:writer"
    await type_and_send(pilot, task)
    await wait_for(pilot, lambda: type(app.screen).__name__ == "ApprovalModal", what="the approval modal")
    modal = app.screen
    await wait_for(
        pilot, lambda: any(w.size.area for w in modal.query("#approval-arguments")), what="the modal's layout"
    )
    shown = rendered(modal)
    assert "Tool: write_file" in shown and "Permission: write" in shown
    assert modal.approval.tool == "write_file"
    for key in modal.approval.arguments:  # the full arguments, as JSON
        assert f'"{key}"' in shown
    await pilot.press(decide)
    await wait_for(pilot, lambda: screen._worker is None, what="the end of the run")
    await settle(pilot)
    return modal


def test_agent_write_approved_in_the_modal_writes_the_file(tui_engine, workspace: Path):
    task = _writer(tui_engine)

    async def go():
        app = make_app(tui_engine)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            modal = await _agent_turn(pilot, task, "a")
            screen = app.screen
            assert tui_engine.pending_approvals() == []
            runs = tui_engine.list_runs(agent_id="writer")
            audit = tui_engine.tool_audit(run_id=runs[0].id)
            assert [(a.tool, a.status) for a in audit] == [("write_file", "ok")]
            # What the modal showed and the user approved is what was written (the model's wording
            # is the agents benchmark's concern, not this test's).
            approved = modal.approval.arguments
            written = workspace / approved["path"]
            assert written.is_file() and approved["content"].strip() and written.read_text() == approved["content"]
            log_text = rendered(screen.query_one("#chat-log"))
            assert "approval approved: write_file" in log_text
            assert "write_file → ok" in log_text
            assert "run " in rendered(screen.query(".chat-assistant").last().query_one(".chat-meta"))
            # The run is a turn of the chat: stored in its session, shown again when it is reopened.
            stored = tui_engine.session_messages(screen.session_id)
            assert [(m.role, m.run_id) for m in stored] == [("user", runs[0].id), ("assistant", runs[0].id)]
            # the answer stored is the one shown live (the run's answer, or how it ended)
            assert stored[0].content == task
            assert stored[1].content == screen.query(".chat-assistant").last().source_text
            assert [s.id for s in tui_engine.list_sessions()] == [screen.session_id]
            screen.open_session(screen.session_id)
            await wait_for(
                pilot,
                lambda: f"agent run {runs[0].id}" in rendered(screen.query_one("#chat-log")),
                what="the reopened run",
            )

    run(go())


def test_agent_write_denied_in_the_modal_writes_nothing(tui_engine, workspace: Path):
    task = _writer(tui_engine)

    async def go():
        app = make_app(tui_engine)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await _agent_turn(pilot, task, "d")
            assert not any(p.is_file() for p in workspace.rglob("*") if p.name != "todo.md")
            runs = tui_engine.list_runs(agent_id="writer")
            statuses = {a.status for a in tui_engine.tool_audit(run_id=runs[0].id)}
            assert "denied" in statuses and "ok" not in statuses
            log_text = rendered(app.screen.query_one("#chat-log"))
            assert "approval denied: write_file" in log_text and "write_file → denied" in log_text

    run(go())


def test_an_agent_that_cannot_start_leaves_no_empty_chat(tui_engine):
    tui_engine.create_agent({"id": "broken", "name": "Broken", "status": "failed"})

    async def go():
        app = make_app(tui_engine)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            picker = screen.query_one("#agent-picker")
            await wait_for(pilot, lambda: "agent:broken" in picker.choices, what="the agent picker")
            picker.value = "agent:broken"
            await type_and_send(pilot, "Do anything.")
            await wait_for(pilot, lambda: screen._worker is None, what="the failed start")
            await settle(pilot)
            last = screen.query(".chat-assistant").last()
            assert "failed:" in rendered(last.query_one(".chat-meta")) and "not ready to run" in rendered(last)
            assert tui_engine.list_sessions() == [] and screen.session_id is None

    run(go())


def test_quitting_while_an_approval_waits_cancels_the_run(tui_engine, workspace: Path):
    import time

    task = _writer(tui_engine)
    quit_at: list[float] = []

    async def go():
        app = make_app(tui_engine)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            picker = app.screen.query_one("#agent-picker")
            await wait_for(pilot, lambda: "agent:writer" in picker.choices, what="the agent picker")
            picker.value = "agent:writer"
            await type_and_send(pilot, task)
            await wait_for(pilot, lambda: type(app.screen).__name__ == "ApprovalModal", what="the approval modal")
            quit_at.append(time.monotonic())
            await pilot.press("ctrl+q")

    run(go())  # returns once the run's worker thread has ended
    assert time.monotonic() - quit_at[0] < 20  # not the approval's 600 s timeout
    run_record = tui_engine.list_runs(agent_id="writer")[0]
    assert run_record.status == "cancelled"
    assert tui_engine.pending_approvals() == []
    assert not (workspace / "shopping.txt").exists()


# ------------------------------------------------------------- injection


def test_markup_and_escape_sequences_in_messages_and_tool_output_display_literally(tui_engine, workspace: Path):
    session = tui_engine.create_session("Injected")
    record(tui_engine, session.id, "Show me", INJECTION)
    (workspace / "evil.txt").write_text(INJECTION)
    execution = tui_engine.execute_tool({"tool": "read_file", "arguments": {"path": "evil.txt"}})
    assert execution.ok and "[@click=app.quit]" in execution.output

    async def go():
        app = make_app(tui_engine)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            screen.open_session(session.id)
            await settle(pilot)
            log = screen.query_one("#chat-log")
            answer = screen.query(".chat-assistant").last()
            shown = rendered(answer)
            for literal in INJECTION_SHOWN:
                assert literal in shown
            assert "\x1b" not in shown and "\x07" not in shown
            await pilot.click(answer, offset=(8, 1))
            await pilot.click(answer, offset=(2, 1))
            await pilot.pause()

            # a tool result with the same text, shown by the log the way an agent run shows it
            block = log.add_tool_result(execution)
            await settle(pilot)
            block.collapsed = False
            await settle(pilot)
            shown = rendered(block)
            for literal in INJECTION_SHOWN:
                assert literal in shown
            body = block.query_one(".tool-body")
            await pilot.click(body, offset=(8, 0))
            await pilot.click(body, offset=(2, 0))
            await pilot.pause()
            assert app.is_running and app.return_code is None
            assert type(app.screen).__name__ == "ChatScreen"

    run(go())


# ------------------------------------------------------------- citations


def test_knowledge_answer_citations_open_the_source_chunk(tui_engine, tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "quokka.md").write_text("# Quokkas\n\nThe quokka is a small marsupial that lives on Rottnest Island.\n")
    for _ in tui_engine.ingest({"paths": [str(docs)], "collection": "animals"}):
        pass

    async def go():
        app = make_app(tui_engine)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            picker = screen.query_one("#agent-picker")
            await wait_for(pilot, lambda: "kb:animals" in picker.choices, what="the knowledge choice")
            picker.value = "kb:animals"
            await type_and_send(pilot, "Where does the quokka live?")
            await wait_for(pilot, lambda: screen._worker is None, what="the answer")
            await settle(pilot)
            buttons = list(screen.query(".citation"))
            assert buttons, rendered(screen.query_one("#chat-log"))
            assert "quokka.md" in rendered(buttons[0])
            await pilot.click(buttons[0])
            await wait_for(pilot, lambda: type(app.screen).__name__ == "CitationModal", what="the chunk")
            assert "Rottnest Island" in rendered(app.screen.query_one("#citation-text"))
            await pilot.press("escape")
            await pilot.pause()
            assert type(app.screen).__name__ == "ChatScreen"

    run(go())


# -------------------------------------------------------------- snapshot


def test_chat_screen_snapshot(tui_engine, snap_compare):
    older = tui_engine.create_session("Trip to the coast")
    record(tui_engine, older.id, "Pack list?", "Sunscreen, a **hat** and water.")
    newer = tui_engine.create_session("Bread recipe")
    record(
        tui_engine,
        newer.id,
        "How long does dough rise?",
        "About **1-2 hours** at room temperature:\n\n- until doubled\n- in a warm spot",
    )
    record(tui_engine, newer.id, "And overnight?", "In the fridge, `8-12 hours`.")
    app = make_app(tui_engine)

    async def open_chat(pilot):
        await settle(pilot)
        # the models' context windows are known before the stored answers show their budget
        await wait_for(pilot, lambda: bool(pilot.app.screen._n_ctx), what="the model list")
        pilot.app.screen.open_session(newer.id)
        await settle(pilot)
        # the list has focus, so no blinking cursor makes the picture flaky
        pilot.app.screen.query_one("#session-list").focus()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=open_chat)


def test_an_extractive_answer_is_labelled_above_the_quote_and_in_its_facts_line():
    from workbench.engine.schemas import AnswerResponse
    from workbench.tui.widgets.chat_stream import EXTRACTIVE_LABEL, answer_meta, answer_text

    quoted = AnswerResponse(
        question="What is the rate limit?",
        text="The limit is 60 per minute. [1]",
        citations=[],
        hits=[],
        model="smollm2",
        mode="extractive",
        latency_ms=1200.0,
    )
    assert answer_text(quoted).startswith(f"*{EXTRACTIVE_LABEL}:*\n\n")
    assert answer_text(quoted).endswith(quoted.text)
    assert answer_meta(quoted, 1.2).endswith("mode extractive")
    written = quoted.model_copy(update={"mode": "generated"})
    assert answer_text(written) == written.text and "extractive" not in answer_meta(written, 1.2)
