"""The Knowledge screen: upload wizard, browse collections/documents/chunks, hybrid search with its scores.

Every engine call runs in a thread worker (`call_engine`, or one worker that
consumes the whole ingest stream); results come back on the UI thread. Paths
are shown relative to the folder a collection's documents share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Input, Label, Select, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from workbench.engine.schemas import IngestFinished, Progress, SearchRequest
from workbench.tui.safe import clean, one_line, plain
from workbench.tui.screens.base import WorkbenchScreen
from workbench.tui.widgets.confirm import ConfirmDialog
from workbench.tui.widgets.knowledge_files import common_root, human_size, short_path
from workbench.tui.widgets.knowledge_views import hit_detail, ingest_rows, ingest_summary, score
from workbench.tui.widgets.knowledge_wizard import UploadWizard
from workbench.tui.widgets.palette import ScreenCommands


class KnowledgeScreen(WorkbenchScreen):
    TITLE_TEXT = "Knowledge"
    CSS_PATH = "knowledge.tcss"
    COMMANDS = {ScreenCommands}
    BINDINGS = [
        Binding("u", "tab('upload')", "Upload", show=True),
        Binding("b", "tab('browse')", "Browse", show=True),
        Binding("s", "tab('search')", "Search", show=True),
        Binding("p", "toggle_pin", "Pin/unpin", show=True),
        Binding("delete", "remove_document", "Remove", show=True),
        Binding("r", "refresh", "Refresh", show=False),
    ]
    PALETTE = [
        ("Knowledge: upload files", "Open the upload wizard", "tab('upload')"),
        ("Knowledge: browse collections", "Collections, documents and chunks", "tab('browse')"),
        ("Knowledge: search", "Hybrid search with fused, BM25 and vector scores", "tab('search')"),
        ("Knowledge: pin or unpin document", "Toggle the highlighted document's pin", "toggle_pin"),
        ("Knowledge: remove document", "Remove the highlighted document (asks first)", "remove_document"),
        ("Knowledge: refresh", "Reload collections and documents", "refresh"),
    ]

    def __init__(self, start: Path | None = None) -> None:
        super().__init__()
        self._start = start
        self.collection: str | None = None
        self.documents: list[Any] = []
        self.hits: list[Any] = []
        #: the folder the shown collection's documents share (paths are shown relative to it)
        self.root = ""
        self.search_root = ""
        self.chunks: list[Any] = []

    def compose_body(self) -> ComposeResult:
        with TabbedContent(initial="browse", id="kn-tabs"):
            with TabPane("Upload", id="upload"):
                yield UploadWizard(self._start, id="kn-wizard")
            with TabPane("Browse", id="browse"):
                with Horizontal(id="kb-top"):
                    yield DataTable(id="kb-collections", cursor_type="row")
                    yield DataTable(id="kb-documents", cursor_type="row", zebra_stripes=True)
                yield Label("Chunks: select a document (enter)", id="kb-chunks-title", markup=False)
                with Horizontal(id="kb-bottom"):
                    yield DataTable(id="kb-chunks", cursor_type="row")
                    with VerticalScroll(id="kb-chunk-scroll"):
                        yield Static("", id="kb-chunk-text", markup=False)
            with TabPane("Search", id="search"):
                with Horizontal(id="ks-bar"):
                    yield Input(placeholder="Search the collection…", id="ks-query")
                    yield Select([], prompt="Collection", id="ks-collection")
                    yield Select(
                        [(m, m) for m in ("hybrid", "bm25", "vector")], value="hybrid", allow_blank=False, id="ks-mode"
                    )
                yield DataTable(id="ks-results", cursor_type="row", zebra_stripes=True)
                with VerticalScroll(id="ks-detail-scroll"):
                    yield Static("Select a result to see its full text and source.", id="ks-detail", markup=False)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#kb-collections", DataTable).add_columns("Collection", "Docs", "Chunks")
        self.query_one("#kb-documents", DataTable).add_columns("Document", "Type", "Size", "Chunks", "Pinned")
        self.query_one("#kb-chunks", DataTable).add_columns("#", "Lines", "Heading")
        self.query_one("#ks-results", DataTable).add_columns("#", "Fused", "BM25", "Vector", "Source", "Text")
        titles = {
            "#kb-collections": "Collections",
            "#kb-documents": "Documents",
            "#kb-chunks": "Chunks",
            "#kb-chunk-scroll": "Chunk text",
            "#ks-results": "Results",
            "#ks-detail-scroll": "Result",
        }
        for selector, title in titles.items():
            self.query_one(selector).border_title = title

    def engine_ready(self) -> None:
        self.action_refresh()

    # -------------------------------------------------------------- actions

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        focus = {"search": "#ks-query", "browse": "#kb-collections", "upload": "#kw-tree"}[tab]
        self.query_one(focus).focus()

    def _active_tab(self) -> str:
        tabs = self.query(TabbedContent)  # empty while the screen is still being composed
        return tabs.first().active if tabs else ""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("toggle_pin", "remove_document"):
            return self._active_tab() == "browse" and bool(self.documents)
        return True

    @on(TabbedContent.TabActivated)
    def _tab_changed(self) -> None:
        self.refresh_bindings()

    def action_refresh(self) -> None:
        if self.wb.engine is None:
            return
        self.call_engine(lambda e: e.list_collections(), self._show_collections, group="kn-collections")

    # ----------------------------------------------------------- collections

    def _show_collections(self, collections: list[Any]) -> None:
        table = self.query_one("#kb-collections", DataTable)
        table.clear()
        for c in collections:
            table.add_row(plain(c.name), str(c.documents), str(c.chunks), key=c.name)
        self.query_one(UploadWizard).set_collections([(c.name, c.documents) for c in collections])
        names = [c.name for c in collections]
        select = self.query_one("#ks-collection", Select)
        current = select.value
        select.set_options([(n, n) for n in names])
        if current in names:
            select.value = current
        elif names:
            select.value = names[0]
        if not names:
            self.collection = None
            self._show_documents(None, [])
        else:
            wanted = self.collection if self.collection in names else names[0]
            table.move_cursor(row=names.index(wanted))
            self._load_documents(wanted)

    @on(DataTable.RowHighlighted, "#kb-collections")
    def _collection_highlighted(self, event: DataTable.RowHighlighted) -> None:
        name = event.row_key.value
        if name and name != self.collection:
            self._load_documents(name)

    def _load_documents(self, collection: str) -> None:
        self.collection = collection
        self.call_engine(
            lambda e: e.list_documents(collection),
            lambda docs: self._show_documents(collection, docs),
            group="kn-documents",
            exclusive=True,
        )

    def _show_documents(self, collection: str | None, documents: list[Any]) -> None:
        if collection != self.collection:
            return
        self.documents = documents
        self.root = common_root([d.path for d in documents])
        table = self.query_one("#kb-documents", DataTable)
        row = table.cursor_row
        table.clear()
        for d in documents:
            table.add_row(
                plain(short_path(d.path, self.root)),
                plain(d.kind),
                human_size(d.size),
                str(d.chunk_count),
                plain("pinned", "yellow") if d.pinned else "",
                key=d.path,
            )
        if documents:
            table.move_cursor(row=min(row, len(documents) - 1))
        self._clear_chunks()
        self.refresh_bindings()

    # ------------------------------------------------------------- documents

    def _current_document(self) -> Any | None:
        table = self.query_one("#kb-documents", DataTable)
        if not self.documents or not 0 <= table.cursor_row < len(self.documents):
            return None
        return self.documents[table.cursor_row]

    def action_toggle_pin(self) -> None:
        doc = self._current_document()
        if doc is None:
            return
        self.call_engine(
            lambda e: e.set_pinned(doc.collection, doc.path, not doc.pinned),
            lambda _: self._load_documents(doc.collection),
        )

    def action_remove_document(self) -> None:
        doc = self._current_document()
        if doc is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.call_engine(lambda e: e.remove_document(doc.collection, doc.path), lambda _: self._removed(doc))

        question = f"Remove {short_path(doc.path, self.root)} ({doc.chunk_count} chunks) from {doc.collection}?"
        self.app.push_screen(ConfirmDialog(question, "Remove", title="Remove document"), answered)

    def _removed(self, doc: Any) -> None:
        self.notify(f"Removed {clean(short_path(doc.path, self.root))}", markup=False)
        self.action_refresh()

    # ---------------------------------------------------------------- chunks

    def _clear_chunks(self) -> None:
        self.query_one("#kb-chunks", DataTable).clear()
        self.query_one("#kb-chunk-text", Static).update("")
        self.query_one("#kb-chunks-title", Label).update("Chunks: select a document (enter)")
        self.chunks = []

    @on(DataTable.RowSelected, "#kb-documents")
    def _document_selected(self) -> None:
        doc = self._current_document()
        if doc is None:
            return
        self.query_one("#kb-chunks-title", Label).update(f"Chunks of {short_path(doc.path, self.root)}: loading…")
        self.call_engine(
            lambda e: e.document_chunks(doc.collection, doc.path, limit=1000),
            lambda chunks: self._show_chunks(doc, chunks),
            group="kn-chunks",
            exclusive=True,
        )

    def _show_chunks(self, doc: Any, chunks: list[Any]) -> None:
        self.chunks = chunks
        table = self.query_one("#kb-chunks", DataTable)
        table.clear()
        for hit in chunks:
            table.add_row(str(hit.ordinal), f"{hit.start_line}-{hit.end_line}", plain(one_line(hit.heading, 60)))
        shown = "" if len(chunks) >= doc.chunk_count else f"the first {len(chunks)} of "
        self.query_one("#kb-chunks-title", Label).update(
            f"Chunks of {short_path(doc.path, self.root)} ({shown}{doc.chunk_count})"
        )
        self.query_one("#kb-chunk-text", Static).update(plain(chunks[0].text) if chunks else "")

    @on(DataTable.RowHighlighted, "#kb-chunks")
    def _chunk_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self.chunks):
            self.query_one("#kb-chunk-text", Static).update(plain(self.chunks[event.cursor_row].text))

    # ---------------------------------------------------------------- search

    @on(Input.Submitted, "#ks-query")
    def _search(self) -> None:
        query = self.query_one("#ks-query", Input).value.strip()
        collection = self.query_one("#ks-collection", Select).value
        if not query:
            return
        if collection is Select.NULL:
            self.notify("No collection to search: ingest documents first.", severity="warning")
            return
        mode = str(self.query_one("#ks-mode", Select).value)
        try:
            request = SearchRequest(query=query, collection=str(collection), mode=mode, top_k=20)  # type: ignore[arg-type]
        except ValidationError as exc:
            self.notify(clean(exc.errors()[0]["msg"]), title="Invalid search", severity="warning", markup=False)
            return
        self.query_one("#ks-detail", Static).update("Searching…")
        self.call_engine(
            lambda e: (e.search(request), e.list_documents(request.collection)),
            self._show_hits,
            group="kn-search",
            exclusive=True,
        )

    def _show_hits(self, result: tuple[Any, list[Any]]) -> None:
        response, documents = result
        self.hits = response.hits
        self.search_root = common_root([d.path for d in documents])
        table = self.query_one("#ks-results", DataTable)
        table.clear()
        for hit in response.hits:
            table.add_row(
                str(hit.rank),
                f"{hit.fused_score:.4f}",
                score(hit.bm25_score, hit.bm25_rank),
                score(hit.vector_score, hit.vector_rank),
                plain(one_line(short_path(hit.path, self.search_root), 28)),
                plain(one_line(hit.text, 60)),
            )
        found = f"{len(response.hits)} results in {response.latency_ms:.0f} ms" if response.hits else "No results."
        self.query_one("#ks-detail", Static).update(f"{found} Select a result to see its full text and source.")

    @on(DataTable.RowSelected, "#ks-results")
    def _hit_selected(self, event: DataTable.RowSelected) -> None:
        if 0 <= event.cursor_row < len(self.hits):
            self.query_one("#ks-detail", Static).update(hit_detail(self.hits[event.cursor_row], self.search_root))

    # ---------------------------------------------------------------- ingest

    @on(UploadWizard.IngestRequested)
    def _ingest(self, event: UploadWizard.IngestRequested) -> None:
        wizard = self.query_one(UploadWizard)
        files = [f.path for f in wizard.preview.files] if wizard.preview else []
        request = {"paths": event.paths, "collection": event.collection, "pinned": event.pinned}
        self.run_worker(
            lambda: self._ingest_worker(request, files, wizard),
            thread=True,
            group="kn-ingest",
            exclusive=True,
            name="ingest",
            exit_on_error=False,
        )

    def _ingest_worker(self, request: dict[str, Any], files: list[str], wizard: UploadWizard) -> None:
        """Consumes the whole ingest stream on this one thread; the wizard hears of each step."""
        app, worker = self.app, get_current_worker()
        try:
            engine = self.engine
            before = {d.path: d for d in engine.list_documents(request["collection"])}
            events = engine.ingest(request)
            try:
                for event in events:
                    if worker.is_cancelled:
                        app.call_from_thread(
                            wizard.show_failure, "Ingest cancelled; files already committed stay.", True
                        )
                        return
                    if isinstance(event, Progress):
                        app.call_from_thread(wizard.show_progress, event.stage, event.done, event.total, event.message)
                    elif isinstance(event, IngestFinished):
                        after = {d.path: d for d in engine.list_documents(request["collection"])}
                        rows = ingest_rows(files, event.report, before, after)
                        app.call_from_thread(wizard.show_report, rows, ingest_summary(event.report))
                        app.call_from_thread(self.action_refresh)
            finally:
                close = getattr(events, "close", None)
                if close is not None:
                    close()
        except Exception as exc:  # noqa: BLE001 - shown in the wizard and as a notification
            app.call_from_thread(wizard.show_failure, str(exc))
            app.call_from_thread(self.show_error, exc)

    @on(UploadWizard.CancelRequested)
    def _cancel_ingest(self) -> None:
        self.workers.cancel_group(self, "kn-ingest")

    @on(UploadWizard.BrowseRequested)
    def _browse(self, event: UploadWizard.BrowseRequested) -> None:
        self.collection = event.collection
        self.action_tab("browse")
        self.action_refresh()
