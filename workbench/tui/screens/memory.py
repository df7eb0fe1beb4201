"""The Memory screen: browse, filter, inspect, remember and forget memories; the knowledge graph around an entity.

Every engine call runs in a thread worker via `call_engine`. Memory values and
graph text are shown literally (never as markup).
"""

from __future__ import annotations

import re
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, DataTable, Input, Label, Select, Static, TabbedContent, TabPane

from workbench.engine.schemas import NAME_PATTERN
from workbench.tui.safe import clean, one_line, plain
from workbench.tui.screens.base import WorkbenchScreen
from workbench.tui.widgets.confirm import ConfirmDialog
from workbench.tui.widgets.memory_form import RememberDialog
from workbench.tui.widgets.memory_views import fetch_page, graph_lookup, memory_detail, value_text
from workbench.tui.widgets.palette import ScreenCommands

PAGE_SIZE = 50
MAX_HOPS = 6
INSPECT_HINT = "Enter inspects the highlighted memory."


class MemoryScreen(WorkbenchScreen):
    TITLE_TEXT = "Memory"
    CSS_PATH = "memory.tcss"
    COMMANDS = {ScreenCommands}
    BINDINGS = [
        Binding("m", "tab('memories')", "Memories", show=True),
        Binding("g", "tab('graph')", "Graph", show=True),
        Binding("n", "remember", "Remember", show=True),
        Binding("delete", "forget", "Forget", show=True),
        Binding("left_square_bracket", "page(-1)", "Prev page", show=True),
        Binding("right_square_bracket", "page(1)", "Next page", show=True),
        Binding("r", "refresh", "Refresh", show=False),
    ]
    PALETTE = [
        ("Memory: browse memories", "The memory list with namespace and text filters", "tab('memories')"),
        ("Memory: knowledge graph", "Facts and neighbours of an entity", "tab('graph')"),
        ("Memory: remember", "Store a new memory", "remember"),
        ("Memory: forget", "Forget the highlighted memory (asks first)", "forget"),
        ("Memory: next page", "The next page of memories", "page(1)"),
        ("Memory: previous page", "The previous page of memories", "page(-1)"),
        ("Memory: refresh", "Reload the memory list", "refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.page = 0
        self.has_next = False
        self.namespace: str | None = None
        self.records: list[Any] = []
        self.neighbours: list[Any] = []
        self.entity_hits: list[Any] = []

    def compose_body(self) -> ComposeResult:
        with TabbedContent(initial="memories", id="mm-tabs"):
            with TabPane("Memories", id="memories"):
                with Horizontal(id="mm-bar"):
                    yield Input(placeholder="Namespace (blank: all)", id="mm-namespace")
                    yield Input(placeholder="Filter by text in keys and values", id="mm-filter")
                    yield Label("", id="mm-page")
                with Horizontal(id="mm-body"):
                    yield DataTable(id="mm-table", cursor_type="row", zebra_stripes=True)
                    with VerticalScroll(id="mm-detail-scroll"):
                        yield Static(INSPECT_HINT, id="mm-detail", markup=False)
            with TabPane("Graph", id="graph"):
                with Horizontal(id="mg-bar"):
                    yield Input(placeholder="Entity name (enter: facts and neighbours)", id="mg-entity")
                    yield Select(
                        [(f"{h} hop{'s' if h > 1 else ''}", h) for h in range(1, MAX_HOPS + 1)],
                        value=1,
                        allow_blank=False,
                        id="mg-hops",
                    )
                    yield Select(
                        [(d, d) for d in ("both", "out", "in")], value="both", allow_blank=False, id="mg-direction"
                    )
                    yield Button("Look up", id="mg-lookup", variant="primary")
                    yield Button("Search", id="mg-search")
                yield Label(
                    "Type an entity and press enter, or search entities by meaning.", id="mg-status", markup=False
                )
                with Horizontal(id="mg-body"):
                    yield DataTable(id="mg-facts", cursor_type="row", zebra_stripes=True)
                    yield DataTable(id="mg-neighbours", cursor_type="row", zebra_stripes=True)
                yield DataTable(id="mg-entities", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#mm-table", DataTable).add_columns("Key", "Namespace", "Kind", "Value")
        self.query_one("#mg-facts", DataTable).add_columns("Attribute", "Value", "Source", "Conf.")
        self.query_one("#mg-neighbours", DataTable).add_columns("Entity", "Type", "Hops", "Via")
        self.query_one("#mg-entities", DataTable).add_columns("Entity", "Type", "Score", "Description")
        titles = {
            "#mm-table": "Memories",
            "#mm-detail-scroll": "Memory",
            "#mg-facts": "Facts",
            "#mg-neighbours": "Neighbours",
            "#mg-entities": "Entity search",
        }
        for selector, title in titles.items():
            self.query_one(selector).border_title = title

    def engine_ready(self) -> None:
        self.action_refresh()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self.query_one("#mm-table" if tab == "memories" else "#mg-entity").focus()

    def _active_tab(self) -> str:
        tabs = self.query(TabbedContent)  # empty while the screen is still being composed
        return tabs.first().active if tabs else ""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        on_memories = self._active_tab() == "memories"
        if action == "forget":
            return on_memories and bool(self.records)
        if action == "page":
            return on_memories and (self.has_next if parameters and parameters[0] == 1 else self.page > 0)
        return True

    @on(TabbedContent.TabActivated)
    def _tab_changed(self) -> None:
        self.refresh_bindings()

    # -------------------------------------------------------------- listing

    def action_refresh(self) -> None:
        if self.wb.engine is None:
            return
        namespace, text, page = self.namespace, self.query_one("#mm-filter", Input).value.strip(), self.page
        self.call_engine(
            lambda e: fetch_page(e, namespace, text, page, PAGE_SIZE),
            lambda result: self._show_page(page, result),
            group="mm-list",
            exclusive=True,
        )

    def action_page(self, step: int) -> None:
        if (step > 0 and self.has_next) or (step < 0 and self.page > 0):
            self.page += step
            self.action_refresh()

    @on(Input.Submitted, "#mm-namespace")
    def _namespace_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if value and not re.match(NAME_PATTERN, value):
            self.notify(f"Not a namespace name: {clean(value)}", severity="warning", markup=False)
            return
        self.namespace = value or None
        self.page = 0
        self.action_refresh()

    @on(Input.Changed, "#mm-filter")
    def _filter_changed(self) -> None:
        self.page = 0
        self.action_refresh()

    def _show_page(self, page: int, result: tuple[list[Any], bool, int | None]) -> None:
        records, self.has_next, matched = result
        self.records = records
        table = self.query_one("#mm-table", DataTable)
        row = table.cursor_row
        table.clear()
        for r in records:
            table.add_row(
                plain(one_line(r.key, 28)), plain(r.namespace), plain(r.kind), plain(one_line(value_text(r.value), 36))
            )
        if records:
            table.move_cursor(row=min(row, len(records) - 1))
        scope = f"namespace {self.namespace}" if self.namespace else "all namespaces"
        count = f"{matched} matches" if matched is not None else f"{len(records)} shown"
        self.query_one("#mm-page", Label).update(plain(f"page {page + 1} · {count} · {scope}"))
        self.query_one("#mm-detail", Static).update(INSPECT_HINT if records else "No memories here.")
        self.refresh_bindings()

    # ----------------------------------------------------- inspect / forget

    def _current(self) -> Any | None:
        table = self.query_one("#mm-table", DataTable)
        return self.records[table.cursor_row] if 0 <= table.cursor_row < len(self.records) else None

    @on(DataTable.RowSelected, "#mm-table")
    def _inspect(self) -> None:
        record = self._current()
        if record is not None:
            self.query_one("#mm-detail", Static).update(memory_detail(record))

    def action_forget(self) -> None:
        record = self._current()
        if record is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.call_engine(lambda e: e.forget(record.key, record.namespace), lambda _: self._forgotten(record))

        question = f"Forget {record.namespace}/{record.key}? This cannot be undone."
        self.app.push_screen(ConfirmDialog(question, "Forget", title="Forget memory"), answered)

    def _forgotten(self, record: Any) -> None:
        self.notify(f"Forgot {clean(one_line(record.key, 60))}", markup=False)
        self.action_refresh()

    def action_remember(self) -> None:
        def stored(request: Any) -> None:
            if request is not None:
                self.call_engine(lambda e: e.remember(request), self._remembered)

        self.app.push_screen(RememberDialog(self.namespace or "default"), stored)

    def _remembered(self, result: Any) -> None:
        self.notify(
            f"{result.status.capitalize()} {clean(one_line(result.key, 60))} in {result.namespace}", markup=False
        )
        self.action_refresh()

    # ---------------------------------------------------------------- graph

    @on(Input.Submitted, "#mg-entity")
    def _entity_submitted(self) -> None:
        self._lookup()

    @on(Button.Pressed, "#mg-lookup")
    def _lookup(self) -> None:
        entity = self.query_one("#mg-entity", Input).value.strip()
        if not entity:
            return
        hops = int(self.query_one("#mg-hops", Select).value)  # type: ignore[arg-type]
        direction = str(self.query_one("#mg-direction", Select).value)
        self.query_one("#mg-status", Label).update(plain(f"Looking up {entity}…"))
        self.call_engine(
            lambda e: graph_lookup(e, entity, hops, direction),
            lambda r: self._show_graph(entity, r),
            group="mg-lookup",
            exclusive=True,
        )

    def _show_graph(self, entity: str, result: tuple[list[Any], list[Any] | None]) -> None:
        facts, neighbours = result
        self.neighbours = neighbours or []
        table = self.query_one("#mg-facts", DataTable)
        table.clear()
        for f in facts:
            table.add_row(
                plain(f.attribute),
                plain(one_line(f.value, 50)),
                plain(one_line(f.source or "", 24)),
                f"{f.confidence:.2f}",
            )
        table = self.query_one("#mg-neighbours", DataTable)
        table.clear()
        for n in self.neighbours:
            table.add_row(plain(n.entity.name), plain(n.entity.type), str(n.hops), plain(" → ".join(n.via)))
        status = (
            f"No entity named {entity!r} in the knowledge graph."
            if neighbours is None
            else f"{entity}: {len(facts)} facts, {len(self.neighbours)} neighbours (enter on a neighbour opens it)"
        )
        self.query_one("#mg-status", Label).update(plain(status))

    @on(Button.Pressed, "#mg-search")
    def _search_entities(self) -> None:
        query = self.query_one("#mg-entity", Input).value.strip()
        if query:
            self.call_engine(
                lambda e: e.search_entities(query, 20), self._show_entities, group="mg-search", exclusive=True
            )

    def _show_entities(self, hits: list[Any]) -> None:
        self.entity_hits = hits
        table = self.query_one("#mg-entities", DataTable)
        table.clear()
        for h in hits:
            table.add_row(
                plain(h.entity.name), plain(h.entity.type), f"{h.score:.3f}", plain(one_line(h.entity.description, 60))
            )

    @on(DataTable.RowSelected, "#mg-neighbours")
    @on(DataTable.RowSelected, "#mg-entities")
    def _open_entity(self, event: DataTable.RowSelected) -> None:
        rows = self.neighbours if event.data_table.id == "mg-neighbours" else self.entity_hits
        if 0 <= event.cursor_row < len(rows):
            self.query_one("#mg-entity", Input).value = rows[event.cursor_row].entity.name
            self._lookup()
