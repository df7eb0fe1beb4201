"""The Memory screen: remember through the form, filter, inspect, forget; graph facts and neighbours."""

from __future__ import annotations

import asyncio

from tests.tui.conftest import SIZE, make_app, settle, wait_for

SEED = [
    {"key": "user.colour", "value": "The user's favourite colour is teal.", "namespace": "prefs"},
    {"key": "user.editor", "value": {"name": "helix", "since": 2023}, "namespace": "prefs"},
    {"key": "trip.lisbon", "value": "Visited Lisbon in spring; loved the trams.", "namespace": "travel"},
    {"key": "odd", "value": "[@click=app.quit]x[/] stays literal", "namespace": "travel"},
]


def cells(table, row: int) -> list[str]:
    return [str(c) for c in table.get_row_at(row)]


def keys(table) -> list[str]:
    return [cells(table, i)[0] for i in range(table.row_count)]


def test_remember_filter_inspect_forget(tui_engine):
    from textual.widgets import DataTable, Input, TextArea

    tui_engine.remember_many(SEED)

    async def run():
        app = make_app(tui_engine, mode="memory")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            table = screen.query_one("#mm-table", DataTable)
            assert sorted(keys(table)) == ["odd", "trip.lisbon", "user.colour", "user.editor"]

            # remember through the form
            table.focus()
            await pilot.press("n")
            await wait_for(pilot, lambda: type(app.screen).__name__ == "RememberDialog", what="the form")
            form = app.screen
            await pilot.press(*"note.tea")
            form.query_one("#mf-namespace", Input).value = "prefs"
            form.query_one("#mf-value", TextArea).text = "Prefers green tea [b]hot[/b]."
            await pilot.click("#mf-save")
            await wait_for(pilot, lambda: app.screen is screen, what="the form to close")
            await settle(pilot)
            stored = tui_engine.recall("note.tea", "prefs")
            assert stored.value == "Prefers green tea [b]hot[/b]." and stored.kind == "episodic"
            assert "note.tea" in keys(table)

            # a bad JSON value is refused inline and the form stays open (opened from the command palette)
            await pilot.press("ctrl+p")
            await pilot.press(*"Memory: remember")
            await pilot.pause(0.5)
            await pilot.press("enter")
            await wait_for(pilot, lambda: type(app.screen).__name__ == "RememberDialog", what="the form")
            form = app.screen
            await pilot.press(*"bad")
            form.query_one("#mf-value", TextArea).text = "{not json"
            form.query_one("#mf-json").value = True
            await pilot.click("#mf-save")
            assert "not valid JSON" in str(form.query_one("#mf-error").render())
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is screen, what="the form to close")

            # filter by text, then by namespace
            # (the Input.Changed message, then the listing worker, come after the assignment returns)
            screen.query_one("#mm-filter", Input).value = "lisbon"
            await wait_for(pilot, lambda: keys(table) == ["trip.lisbon"], what="the filtered listing")
            await settle(pilot)
            assert keys(table) == ["trip.lisbon"]
            assert "1 matches" in str(screen.query_one("#mm-page").render())
            screen.query_one("#mm-filter", Input).value = ""
            screen.query_one("#mm-namespace", Input).focus()
            await pilot.press(*"travel", "enter")
            await wait_for(pilot, lambda: sorted(keys(table)) == ["odd", "trip.lisbon"], what="the namespace's listing")
            await settle(pilot)
            assert sorted(keys(table)) == ["odd", "trip.lisbon"]

            # inspect: every field, the value literal
            table.focus()
            row = keys(table).index("odd")
            table.move_cursor(row=row)
            await pilot.press("enter")
            detail = str(screen.query_one("#mm-detail").render())
            assert "key: odd" in detail and "namespace: travel" in detail and "kind: episodic" in detail
            assert "[@click=app.quit]x[/] stays literal" in detail
            assert "accessed: 0 times" in detail and "created: " in detail and "metadata:" in detail

            # forget with confirmation
            await pilot.press("delete")
            await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog", what="the dialog")
            assert "Forget travel/odd?" in str(app.screen.query_one("#confirm-question").render())
            await pilot.click("#confirm-yes")
            await settle(pilot)
            assert keys(table) == ["trip.lisbon"]
            assert [m.key for m in tui_engine.list_memories("travel")] == ["trip.lisbon"]
            assert app.is_running

    asyncio.run(run())


def test_graph_facts_neighbours_and_entity_search(tui_engine):
    from textual.widgets import DataTable, Input

    tui_engine.store_fact("Ada Lovelace", "born", "1815")
    tui_engine.store_fact("Ada Lovelace", "field", "mathematics")
    tui_engine.create_relationship("Ada Lovelace", "Charles Babbage", "worked_with")
    tui_engine.create_relationship("Charles Babbage", "Analytical Engine", "designed")

    async def run():
        app = make_app(tui_engine, mode="memory")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            await pilot.press("g")
            assert screen.query_one("#mm-tabs").active == "graph"
            await pilot.press(*"Ada Lovelace", "enter")
            await settle(pilot)
            facts = screen.query_one("#mg-facts", DataTable)
            assert sorted((cells(facts, i)[0], cells(facts, i)[1]) for i in range(facts.row_count)) == [
                ("born", "1815"),
                ("field", "mathematics"),
            ]
            neighbours = screen.query_one("#mg-neighbours", DataTable)
            assert keys(neighbours) == ["Charles Babbage"]

            screen.query_one("#mg-hops").value = 2
            await pilot.click("#mg-lookup")
            await settle(pilot)
            rows = {cells(neighbours, i)[0]: cells(neighbours, i) for i in range(neighbours.row_count)}
            assert rows["Charles Babbage"][2] == "1"
            assert rows["Analytical Engine"][2:] == ["2", "worked_with → designed"]

            # enter on a neighbour opens it
            neighbours.focus()
            neighbours.move_cursor(row=list(rows).index("Analytical Engine"))
            await pilot.press("enter")
            await settle(pilot)
            assert screen.query_one("#mg-entity", Input).value == "Analytical Engine"
            assert "Analytical Engine: 0 facts" in str(screen.query_one("#mg-status").render())

            # an unknown entity is reported, not fatal
            screen.query_one("#mg-entity", Input).value = "Nobody Here"
            await pilot.click("#mg-lookup")
            await settle(pilot)
            assert "No entity named 'Nobody Here'" in str(screen.query_one("#mg-status").render())

            screen.query_one("#mg-entity", Input).value = "Babbage"
            await pilot.click("#mg-search")
            await settle(pilot)
            entities = screen.query_one("#mg-entities", DataTable)
            assert keys(entities)[0] == "Charles Babbage"

    asyncio.run(run())


def test_memory_snapshot(tui_engine, snap_compare):
    tui_engine.remember_many(SEED)
    app = make_app(tui_engine, mode="memory")

    async def run_before(pilot):
        await settle(pilot)
        pilot.app.screen.query_one("#mm-table").focus()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
