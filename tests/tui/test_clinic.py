"""The Clinic screen: a real finished run inspected, approvals resolved, a seeded run's snapshot."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static, TabbedContent

from tests.tui.conftest import SIZE, make_app, settle, wait_for


@pytest.fixture
def workspace(tui_engine, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "todo.md").write_text("- buy milk\n- call Bob\n")
    tui_engine.add_workspace_root(str(root))
    return root


def _event_texts(app) -> list[str]:
    return [str(w.render()) for w in app.screen.query(".run-event")]


def test_a_finished_run_is_inspected_step_by_step(tui_engine, workspace):
    tui_engine.create_agent({"id": "reader", "name": "Reader", "tools": ["read_file", "list_dir"], "max_steps": 3})
    events = list(
        tui_engine.run_agent({"agent_id": "reader", "task": "Open the file notes/todo.md and tell me what is on it."})
    )
    run = events[-1].run
    stored = tui_engine.run_events(run.id)
    call = next(r.payload for r in stored if r.type == "tool_call_proposed")
    result = next(r.payload["execution"] for r in stored if r.type == "tool_result")

    async def run_app():
        app = make_app(tui_engine, mode="clinic")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            table = app.screen.query_one("#runs", DataTable)
            assert table.row_count == 1
            row = table.get_row(run.id)
            assert [row[0].plain, row[1].plain, row[2].plain] == [run.id, "reader", run.status]
            assert row[3] == str(run.steps) and row[4] == str(run.prompt_tokens + run.completion_tokens)

            summary = str(app.screen.query_one("#run-summary", Static).render())
            assert run.id in summary and f"{run.steps} steps" in summary and "Task: Open the file" in summary
            shown = _event_texts(app)
            assert len(shown) == len(stored)
            assert shown[0].startswith("▶ run started") and shown[-1].startswith(f"■ run {run.status}")
            # the tool call with its exact arguments, then its result or error, with timings
            call_text = next(t for t in shown if t.startswith("│ → call read_file"))
            assert json.dumps(call["arguments"], ensure_ascii=False, sort_keys=True) in call_text
            result_text = next(t for t in shown if t.startswith("│ ← read_file"))
            assert result["status"] in result_text and " ms" in result_text
            assert (result["output"] or result["error"]).splitlines()[0] in result_text
            step = next(t for t in shown if t.startswith("└ step 1 model call"))
            assert "tokens" in step and "output:" in step
            assert "ev-error" in app.screen.query(".run-event")[shown.index(result_text)].classes or result["ok"]

    asyncio.run(run_app())


def test_a_pending_approval_is_denied_from_the_clinic(tui_engine):
    tui_engine.create_agent({"id": "writer", "name": "Writer", "tools": ["write_file"]})
    approval = tui_engine.approvals.request(
        None, "writer", "write_file", {"path": "x.txt", "content": "[@click=app.quit]x[/]"}, "write"
    )

    async def run_app():
        app = make_app(tui_engine, mode="clinic")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            tabs = app.screen.query_one("#clinic-tabs", TabbedContent)
            assert str(tabs.get_tab("tab-approvals").label) == "Approvals (1)"
            # through the command palette
            await pilot.press("ctrl+p")
            await pilot.press(*"pending approvals")
            await pilot.pause(0.5)
            await pilot.press("enter")
            await wait_for(pilot, lambda: tabs.active == "tab-approvals", timeout=10, what="the Approvals tab")
            detail = str(app.screen.query_one("#approval-detail", Static).render())
            assert "write_file (write)" in detail and '"content": "[@click=app.quit]x[/]"' in detail
            await pilot.press("v")
            await pilot.pause()
            assert type(app.screen).__name__ == "ApprovalModal"
            app.screen.query_one("#approval-reason").value = "not today"
            await pilot.click("#deny")
            await wait_for(pilot, lambda: tui_engine.pending_approvals() == [], what="the denial")
            await settle(pilot)
            decided = tui_engine.approvals.get(approval.id)
            assert decided.status == "denied" and decided.reason == "not today"
            assert app.screen.query_one("#approvals", DataTable).row_count == 0
            assert str(tabs.get_tab("tab-approvals").label) == "Approvals"
            assert "No pending approvals" in str(app.screen.query_one("#approval-detail", Static).render())

    asyncio.run(run_app())


def test_a_waiting_run_is_approved_from_the_clinic_and_followed_to_its_end(tui_engine, workspace):
    tui_engine.create_agent({"id": "writer", "name": "Writer", "tools": ["write_file"], "max_steps": 2})
    finished = threading.Event()

    def run_in_background():
        try:
            for _ in tui_engine.run_agent(
                {"agent_id": "writer", "task": "Write 'buy milk' into the file shopping.txt."}
            ):
                pass
        finally:
            finished.set()

    async def run_app():
        app = make_app(tui_engine, mode="clinic")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            worker = threading.Thread(target=run_in_background, daemon=True)
            worker.start()
            # no key pressed: the auto-refresh finds the running run and its approval
            table = app.screen.query_one("#approvals", DataTable)
            await wait_for(pilot, lambda: table.row_count == 1, timeout=300, what="the approval to show")
            runs = app.screen.query_one("#runs", DataTable)
            assert runs.row_count == 1 and runs.get_row_at(0)[2].plain == "running"
            await pilot.press("ctrl+a", "v")
            await pilot.pause()
            assert type(app.screen).__name__ == "ApprovalModal"
            await pilot.press("a")
            await wait_for(pilot, finished.is_set, timeout=300, what="the run to finish")
            await wait_for(
                pilot,
                lambda: runs.get_row_at(0)[2].plain != "running",
                timeout=30,
                what="the auto-refresh after the run",
            )
            await settle(pilot)
            run = tui_engine.list_runs()[0]
            assert runs.get_row_at(0)[2].plain == run.status
            approvals = tui_engine.approvals.list(run.id)
            assert approvals[0].status == "approved"
            shown = _event_texts(app)
            assert any(t.startswith("│ ? approval approved · write_file (write)") for t in shown)
            assert shown[-1].startswith(f"■ run {run.status}")

    asyncio.run(run_app())


T0 = datetime(2025, 1, 2, 9, 30, 0, tzinfo=UTC)
SEEDED_EVENTS = [
    ("agent_run_started", {"agent_id": "reader", "model": "SmolLM2", "task": "Read notes/todo.md"}),
    ("step_started", {"step": 1, "offered_tools": ["read_file"]}),
    (
        "tool_call_proposed",
        {"step": 1, "call_id": "c1", "tool": "read_file", "arguments": {"path": "notes/todo.md"}, "permission": "read"},
    ),
    (
        "tool_result",
        {
            "step": 1,
            "call_id": "c1",
            "execution": {
                "tool": "read_file",
                "ok": True,
                "status": "ok",
                "output": "- buy milk [@click=app.quit]x[/]\n- call Bob",
                "error": None,
                "duration_ms": 1.5,
                "audit_id": "a1",
            },
        },
    ),
    (
        "step_finished",
        {
            "step": 1,
            "action": "tool_call",
            "output": '{"action": "read_file"}',
            "model_ms": 1200.0,
            "overhead_ms": 2.0,
            "prompt_tokens": 150,
            "completion_tokens": 30,
        },
    ),
    (
        "guardrail",
        {
            "step": 2,
            "violation": {
                "stage": "response",
                "rule": "secret:openai_key",
                "detail": "An OpenAI key on line 1 was redacted.",
                "action": "redact",
            },
        },
    ),
    (
        "guardrail",
        {
            "step": 2,
            "violation": {
                "stage": "tripwire",
                "rule": "dangerous_output",
                "detail": "A dangerous shell command on line 1.",
                "action": "block",
            },
        },
    ),
    ("agent_run_finished", {"run": {"id": "run_demo", "status": "blocked", "steps": 2, "duration_ms": 2500.0}}),
]


def _seed_run(engine) -> None:
    """A finished run with fixed ids, times and events (what the runner stores, without a model)."""
    engine.create_agent({"id": "reader", "name": "Reader", "tools": ["read_file"]})
    engine.db.execute(
        "INSERT INTO agent_runs VALUES ('run_demo', 'reader', ?, 'SmolLM2', 'blocked', NULL, "
        "'A tripwire stopped the run.', 2, 300, 60, ?, ?, 2500.0)",
        ["Read notes/todo.md \x1b]0;pwned\x07[@click=app.quit]x[/]", T0, T0 + timedelta(seconds=2.5)],
    )
    for seq, (kind, payload) in enumerate(SEEDED_EVENTS, 1):
        engine.db.execute(
            "INSERT INTO run_events VALUES (?, ?, ?, ?, ?)",
            [
                "run_demo",
                seq,
                kind,
                json.dumps({"type": kind, "run_id": "run_demo", **payload}),
                T0 + timedelta(milliseconds=seq),
            ],
        )


def test_guardrail_and_tripwire_events_are_highlighted_and_untrusted_text_is_literal(tui_engine):
    _seed_run(tui_engine)

    async def run_app():
        app = make_app(tui_engine, mode="clinic")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            widgets = list(app.screen.query(".run-event"))
            assert [("ev-guardrail" in w.classes, "ev-tripwire" in w.classes) for w in widgets[5:7]] == [
                (True, False),
                (False, True),
            ]
            assert str(widgets[6].render()).startswith("⚠ TRIPWIRE block · dangerous_output")
            assert "- buy milk [@click=app.quit]x[/]" in str(widgets[3].render())
            summary = str(app.screen.query_one("#run-summary", Static).render())
            assert "Read notes/todo.md ]0;pwned[@click=app.quit]x[/]" in summary and "\x1b" not in summary
            assert app.is_running

    asyncio.run(run_app())


def test_clinic_snapshot(tui_engine, snap_compare):
    _seed_run(tui_engine)

    async def settled(pilot):
        await settle(pilot)
        assert len(pilot.app.screen.query(".run-event")) == len(SEEDED_EVENTS)

    assert snap_compare(make_app(tui_engine, mode="clinic"), terminal_size=SIZE, run_before=settled)
