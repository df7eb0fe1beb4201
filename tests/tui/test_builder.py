"""The Builder screen: create, validate, build from a role model, export/import, over a real engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.widgets import DataTable, Input, SelectionList, Static, TabbedContent, TextArea

from tests.tui.conftest import SIZE, make_app, settle, wait_for
from workbench.engine.errors import NotFound


def _static_text(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def _type(pilot, selector: str, text: str) -> None:
    widget = pilot.app.screen.query_one(selector)
    widget.focus()
    if isinstance(widget, Input):
        widget.value = ""
    await pilot.press(*text)


async def _choose(pilot, selector: str, value: str) -> None:
    """Tick `value` in a SelectionList with the keyboard."""
    options = pilot.app.screen.query_one(selector, SelectionList)
    options.focus()
    options.highlighted = next(i for i in range(options.option_count) if options.get_option_at_index(i).value == value)
    await pilot.press("space")


def _has_agent(engine, agent_id: str) -> bool:
    try:
        engine.get_agent(agent_id)
    except NotFound:
        return False
    return True


def test_create_an_agent_through_the_form(tui_engine):
    async def run():
        app = make_app(tui_engine, mode="builder")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("ctrl+n")
            await _type(pilot, "#agent-name", "Helper Bot")
            await _type(pilot, "#agent-description", "Reads notes")
            await _type(pilot, "#agent-instructions", "Be brief.")
            await _type(pilot, "#agent-max-steps", "4")
            await _choose(pilot, "#agent-tools", "read_file")
            await _choose(pilot, "#agent-tools", "list_dir")
            await _choose(pilot, "#guard-approvals", "read")  # also ask before reading
            await pilot.click("#guard-pii")
            await _type(pilot, "#guard-deny", "id_rsa")
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: _has_agent(tui_engine, "helper-bot"), what="the agent to be stored")
            await settle(pilot)

            stored = tui_engine.get_agent("helper-bot")
            assert stored.name == "Helper Bot" and stored.description == "Reads notes"
            assert stored.instructions == "Be brief." and stored.max_steps == 4
            assert stored.tools == ["list_dir", "read_file"]  # in the list's order
            assert stored.guardrails.redact_pii is True and stored.guardrails.block_secrets is True
            assert stored.guardrails.deny_patterns == ["id_rsa"]
            assert stored.approvals.require == ["read", "write", "exec", "network"]
            table = app.screen.query_one("#agents", DataTable)
            assert table.get_row("helper-bot")[1].plain == "Helper Bot"
            # the saved agent stays in the form; its id can no longer be edited
            assert app.screen.query_one("#agent-id", Input).disabled
            assert app.screen.current.id == "helper-bot"

            # edit it: the change is stored by update_agent
            await _type(pilot, "#agent-max-steps", "9")
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: tui_engine.get_agent("helper-bot").max_steps == 9, what="the update")
            assert tui_engine.get_agent("helper-bot").tools == ["list_dir", "read_file"]

    asyncio.run(run())


def test_bad_values_are_shown_and_nothing_is_stored(tui_engine):
    tui_engine.create_agent({"id": "steady", "name": "Steady", "max_steps": 5})

    async def run():
        app = make_app(tui_engine, mode="builder")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert app.screen.current.id == "steady"
            error = app.screen.query_one("#builder-error", Static)
            assert not error.display

            await _type(pilot, "#agent-max-steps", "0")
            await pilot.press("ctrl+s")
            await settle(pilot)
            assert error.display and "max_steps" in _static_text(app, "#builder-error")
            assert tui_engine.get_agent("steady").max_steps == 5

            # a new agent (from the command palette) with a regex that does not compile
            await pilot.press("ctrl+p")
            await pilot.press(*"builder: new agent")
            await pilot.pause(0.5)
            await pilot.press("enter")
            await wait_for(
                pilot,
                lambda: type(app.screen).__name__ == "BuilderScreen" and app.screen.current is None,
                timeout=10,
                what="an empty form",
            )
            assert not error.display
            await _type(pilot, "#agent-name", "Broken")
            await _type(pilot, "#guard-deny", "(unclosed")
            await pilot.press("ctrl+s")
            await settle(pilot)
            assert "deny_patterns" in _static_text(app, "#builder-error")
            assert not _has_agent(tui_engine, "broken")

            # an empty number is refused before the engine is asked
            await _type(pilot, "#agent-max-steps", "")
            await pilot.press("ctrl+s")
            await settle(pilot)
            assert "Max steps: enter a whole number" in _static_text(app, "#builder-error")

    asyncio.run(run())


def test_role_model_wizard_builds_an_agent_and_shows_its_skills(tui_engine):
    async def run():
        app = make_app(tui_engine, mode="builder")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("ctrl+g")
            await pilot.pause()
            assert type(app.screen).__name__ == "RoleModelDialog"
            await _type(pilot, "#wizard-name", "Ada Lovelace")
            await _type(pilot, "#wizard-occupation", "Mathematician")
            await _type(pilot, "#wizard-cycles", "9")
            await pilot.click("#wizard-ok")
            await pilot.pause()
            assert "deepening_cycles" in _static_text(app, "#wizard-error")  # refused in the dialog
            await _type(pilot, "#wizard-cycles", "0")
            await pilot.click("#wizard-ok")
            await pilot.pause()

            await wait_for(pilot, lambda: type(app.screen).__name__ == "BuilderScreen", what="the dialog to close")
            builder = app.screen
            progress = builder.query_one("#build-progress")
            # The progress panel names the build and counts the time (it stays filled in afterwards).
            await wait_for(
                pilot,
                lambda: "Ada Lovelace" in str(builder.query_one("#build-title").render()),
                timeout=30,
                what="the build's progress panel",
            )
            await wait_for(
                pilot, lambda: "elapsed" in str(builder.query_one("#build-elapsed").render()), what="the elapsed time"
            )
            await wait_for(
                pilot,
                lambda: builder._build is None and not progress.has_class("-running"),
                timeout=600,
                what="the build",
            )
            await settle(pilot)

            notes = [n.message for n in app._notifications]
            assert [a.id for a in tui_engine.list_agents().items] == ["ada-lovelace"], notes
            agent = tui_engine.get_agent("ada-lovelace")
            assert agent.status == "ready" and agent.occupation == "Mathematician"
            caps = tui_engine.capabilities("ada-lovelace")
            assert caps.skills, "the build generates at least one skill"
            assert builder.query_one("#builder-tabs", TabbedContent).active == "tab-capabilities"
            shown = str(builder.query_one("#capabilities-text", Static).render())
            assert f"Skills ({len(caps.skills)})" in shown
            for skill in caps.skills:
                assert skill.name in shown
            assert builder.current.id == "ada-lovelace"

    asyncio.run(run())


def test_export_then_import_round_trip(tui_engine, tmp_path: Path):
    tui_engine.create_agent(
        {
            "id": "exp",
            "name": "Exporter",
            "instructions": "Be brief.",
            "tools": ["read_file"],
            "max_steps": 3,
            "guardrails": {"redact_pii": True},
        }
    )
    original = tui_engine.get_agent("exp")
    target = tmp_path / "exp.yaml"

    async def answer_path(pilot, path: Path, replace: bool = False) -> None:
        await pilot.pause()
        assert type(pilot.app.screen).__name__ == "PathDialog"
        if replace:
            await pilot.click("#path-replace")
        await _type(pilot, "#path-input", str(path))
        await pilot.press("enter")

    async def run():
        app = make_app(tui_engine, mode="builder")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert app.screen.current.id == "exp"
            await pilot.press("ctrl+t")
            await answer_path(pilot, target)
            await wait_for(pilot, target.exists, what="the export file")
            await settle(pilot)
            exported = target.read_text()
            assert "format: workbench-agent/1" in exported and "Be brief." in exported

            # exporting onto an existing file asks first; cancelling leaves it alone
            target.write_text("keep me")
            await pilot.press("ctrl+t")
            await answer_path(pilot, target)
            await pilot.pause()
            assert type(app.screen).__name__ == "ConfirmDialog"
            assert "Overwrite" in str(app.screen.query_one("#confirm-question", Static).render())
            await pilot.click("#confirm-no")
            await settle(pilot)
            assert target.read_text() == "keep me"
            target.write_text(exported)

            # delete (with confirmation), then import the file back
            await pilot.press("f8")
            await pilot.pause()
            await pilot.click("#confirm-yes")
            await wait_for(pilot, lambda: not _has_agent(tui_engine, "exp"), what="the delete")
            await settle(pilot)
            assert app.screen.query_one("#agents", DataTable).row_count == 0

            await pilot.press("ctrl+o")
            await answer_path(pilot, target)
            await wait_for(pilot, lambda: _has_agent(tui_engine, "exp"), what="the import")
            await settle(pilot)
            imported = tui_engine.get_agent("exp")
            fields = {"created_at", "updated_at"}
            assert imported.model_dump(exclude=fields) == original.model_dump(exclude=fields)
            assert app.screen.current.id == "exp"

            # importing again clashes unless "replace" is ticked
            target.write_text(exported.replace("Be brief.", "Be thorough."))
            await pilot.press("ctrl+o")
            await answer_path(pilot, target)
            await settle(pilot)
            assert tui_engine.get_agent("exp").instructions == "Be brief."
            await pilot.press("ctrl+o")
            await answer_path(pilot, target, replace=True)
            await wait_for(
                pilot, lambda: tui_engine.get_agent("exp").instructions == "Be thorough.", what="the replacing import"
            )
            await settle(pilot)
            assert app.screen.query_one("#agent-instructions", TextArea).text == "Be thorough."

    asyncio.run(run())


def test_builder_snapshot(tui_engine, snap_compare):
    for agent_id, name, tools in [
        ("analyst", "Analyst", ["read_file", "search_files"]),
        ("scribe", "Scribe [i]x[/i]", ["write_file"]),
        ("watcher", "Watcher", []),
    ]:
        tui_engine.create_agent(
            {
                "id": agent_id,
                "name": name,
                "tools": tools,
                "description": f"The {agent_id}.",
                "instructions": "Answer in one sentence.",
                "max_steps": 4,
            }
        )

    async def settled(pilot):
        await settle(pilot)
        screen = pilot.app.screen
        screen.query_one("#agent-sort").value = "name"  # by name: no creation times involved
        await settle(pilot)
        table = screen.query_one("#agents", DataTable)
        assert table.row_count == 3
        table.focus()
        table.move_cursor(row=0)
        await pilot.press("enter")
        await settle(pilot)
        assert screen.current.id == "analyst"

    assert snap_compare(make_app(tui_engine, mode="builder"), terminal_size=SIZE, run_before=settled)
