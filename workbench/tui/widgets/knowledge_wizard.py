"""The upload wizard: files and folders -> collection -> preview -> ingest with a per-file report.

The wizard owns its steps and what the user picked; it never calls the engine.
It asks its screen to ingest with `IngestRequested` and the screen feeds the
stream back through `show_progress`, `show_report` and `show_failure`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widgets import (
    Button,
    Checkbox,
    ContentSwitcher,
    DataTable,
    Input,
    Label,
    OptionList,
    ProgressBar,
    Static,
)
from textual.widgets.option_list import Option

from workbench.engine.schemas import NAME_PATTERN
from workbench.tui.safe import clean, one_line, plain
from workbench.tui.widgets.knowledge_files import Preview, common_root, human_size, scan, short_path, supported_types
from workbench.tui.widgets.knowledge_tree import PathTree

STEPS = ("files", "collection", "preview", "ingest")
STEP_TITLES = ("1 Files", "2 Collection", "3 Preview", "4 Ingest")


class UploadWizard(Vertical):
    """Pick files and folders, a collection, check the preview, then ingest."""

    BINDINGS = [
        Binding("a", "add_highlighted", "Add to upload", show=True),
        Binding("x", "remove_selected", "Remove from upload", show=True),
    ]

    class IngestRequested(Message):
        def __init__(self, paths: list[str], collection: str, pinned: bool) -> None:
            super().__init__()
            self.paths = paths
            self.collection = collection
            self.pinned = pinned

    class CancelRequested(Message):
        """The user wants the running ingest stopped."""

    class BrowseRequested(Message):
        def __init__(self, collection: str) -> None:
            super().__init__()
            self.collection = collection

    def __init__(self, start: Path | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._start = start or Path.home()
        self.selected: list[str] = []
        self.preview: Preview | None = None
        self.collection = ""
        self.running = False

    def compose(self) -> ComposeResult:
        yield Label("", id="kw-steps")
        with ContentSwitcher(initial="files", id="kw-switcher"):
            with Vertical(id="files"):
                with Horizontal(id="kw-files-body"):
                    with Vertical(id="kw-tree-side"):
                        with Horizontal(classes="kw-row"):
                            yield Input(placeholder="Type a file or folder path", id="kw-path")
                            yield Button("Add", id="kw-add-path")
                            yield Button("Open", id="kw-open", tooltip="Show this folder in the tree")
                        yield PathTree(self._start, id="kw-tree")
                    with Vertical(id="kw-selected-side"):
                        yield Label("Selected for upload (0)", id="kw-selected-title")
                        yield OptionList(id="kw-selected")
                        yield Label("a adds the highlighted tree entry, x removes", classes="kw-hint")
                with Horizontal(classes="kw-buttons"):
                    yield Button("Next", variant="primary", id="kw-next-files")
            with Vertical(id="collection"):
                yield Label("Collection: choose one or type a new name (letters, digits, _ . -)")
                yield Input(placeholder="default", id="kw-collection")
                yield OptionList(id="kw-collections")
                yield Checkbox("Pin these documents (their best chunk joins every search)", id="kw-pinned")
                yield Label("", id="kw-collection-error", classes="kw-error")
                with Horizontal(classes="kw-buttons"):
                    yield Button("Back", id="kw-back-collection")
                    yield Button("Preview", variant="primary", id="kw-next-collection")
            with Vertical(id="preview"):
                yield Static("Scanning…", id="kw-preview-summary", markup=False)
                yield DataTable(id="kw-preview-table", cursor_type="row", zebra_stripes=True)
                yield Label(f"Supported: {supported_types()}", classes="kw-hint", markup=False)
                with Horizontal(classes="kw-buttons"):
                    yield Button("Back", id="kw-back-preview")
                    yield Button("Ingest", variant="success", id="kw-ingest")
            with Vertical(id="ingest"):
                yield Label("", id="kw-stage", markup=False)
                yield ProgressBar(id="kw-progress", show_eta=False)
                yield Static("", id="kw-report-summary", markup=False)
                yield DataTable(id="kw-report", cursor_type="row", zebra_stripes=True)
                with Horizontal(classes="kw-buttons"):
                    yield Button("Cancel", variant="error", id="kw-cancel")
                    yield Button("Browse collection", id="kw-browse", disabled=True)
                    yield Button("New upload", variant="primary", id="kw-restart", disabled=True)

    def on_mount(self) -> None:
        self.query_one("#kw-preview-table", DataTable).add_columns("File", "Size", "Type", "Status")
        self.query_one("#kw-report", DataTable).add_columns("File", "Result", "Detail")
        self._go("files")

    # ----------------------------------------------------------------- steps

    @property
    def step(self) -> str:
        return self.query_one(ContentSwitcher).current or "files"

    def _go(self, step: str) -> None:
        self.query_one(ContentSwitcher).current = step
        index = STEPS.index(step)
        titles = [f"[{t}]" if i == index else t for i, t in enumerate(STEP_TITLES)]
        self.query_one("#kw-steps", Label).update(plain("  ›  ".join(titles)))

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        event.stop()
        actions = {
            "kw-add-path": self._add_typed,
            "kw-open": self._open_typed,
            "kw-next-files": self._to_collection,
            "kw-back-collection": lambda: self._go("files"),
            "kw-next-collection": self._to_preview,
            "kw-back-preview": lambda: self._go("collection"),
            "kw-ingest": self._ingest,
            "kw-cancel": lambda: self.post_message(self.CancelRequested()),
            "kw-browse": lambda: self.post_message(self.BrowseRequested(self.collection)),
            "kw-restart": self.restart,
        }
        if event.button.id in actions:
            actions[event.button.id]()

    # ---------------------------------------------------------------- files

    def add_path(self, path: str | Path) -> bool:
        """Add a file or folder to the upload; False (with a notice) when it does not exist."""
        full = os.path.abspath(os.path.expanduser(str(path)))
        if not os.path.exists(full):
            self.notify(f"No such file or folder: {clean(full)}", severity="warning", markup=False)
            return False
        if full not in self.selected:
            self.selected.append(full)
            self._show_selected()
        return True

    def _show_selected(self) -> None:
        options = self.query_one("#kw-selected", OptionList)
        options.clear_options()
        options.add_options([Option(plain(p + (os.sep if os.path.isdir(p) else "")), id=p) for p in self.selected])
        self.query_one("#kw-selected-title", Label).update(f"Selected for upload ({len(self.selected)})")

    def _add_typed(self) -> None:
        field = self.query_one("#kw-path", Input)
        if field.value.strip() and self.add_path(field.value.strip()):
            field.value = ""

    def _open_typed(self) -> None:
        path = Path(os.path.expanduser(self.query_one("#kw-path", Input).value.strip() or str(Path.home())))
        if not path.is_dir():
            self.notify(f"Not a folder: {clean(path)}", severity="warning", markup=False)
            return
        self.query_one(PathTree).set_root(path.resolve())

    @on(Input.Submitted, "#kw-path")
    def _path_submitted(self) -> None:
        self._add_typed()

    @on(PathTree.NodeSelected, "#kw-tree")
    def _node_selected(self, event: PathTree.NodeSelected) -> None:
        event.stop()
        if event.node.data is not None and not event.node.allow_expand:
            self.add_path(event.node.data)

    def action_add_highlighted(self) -> None:
        node = self.query_one(PathTree).cursor_node
        if self.step == "files" and node is not None and node.data is not None:
            self.add_path(node.data)

    def action_remove_selected(self) -> None:
        options = self.query_one("#kw-selected", OptionList)
        if self.step == "files" and options.highlighted is not None and self.selected:
            del self.selected[options.highlighted]
            self._show_selected()

    # ----------------------------------------------------------- collection

    def set_collections(self, names: list[tuple[str, int]]) -> None:
        """The existing collections (name, documents), offered as choices."""
        options = self.query_one("#kw-collections", OptionList)
        options.clear_options()
        options.add_options([Option(plain(f"{name}  ({count} documents)"), id=name) for name, count in names])
        self.query_one("#kw-collection", Input).suggester = SuggestFromList([n for n, _ in names])

    @on(OptionList.OptionSelected, "#kw-collections")
    def _collection_chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.query_one("#kw-collection", Input).value = event.option.id or ""

    def _to_collection(self) -> None:
        if not self.selected:
            self.notify("Add at least one file or folder first.", severity="warning")
            return
        self._go("collection")
        self.query_one("#kw-collection", Input).focus()

    @on(Input.Submitted, "#kw-collection")
    def _to_preview(self) -> None:
        name = self.query_one("#kw-collection", Input).value.strip() or "default"
        error = self.query_one("#kw-collection-error", Label)
        if not re.match(NAME_PATTERN, name):
            error.update(
                plain(
                    f"{name!r} is not a valid collection name: start with a letter or digit, "
                    "then letters, digits, _ . - (at most 64)."
                )
            )
            return
        error.update("")
        self.collection = name
        self._go("preview")
        self.query_one("#kw-preview-summary", Static).update("Scanning…")
        self.query_one("#kw-preview-table", DataTable).clear()
        self.query_one("#kw-ingest", Button).disabled = True
        self._scan(list(self.selected))

    # -------------------------------------------------------------- preview

    @work(thread=True, exclusive=True, group="kw-scan")
    def _scan(self, paths: list[str]) -> None:
        preview = scan(paths)
        self.app.call_from_thread(self._show_preview, preview)

    def _show_preview(self, preview: Preview) -> None:
        self.preview = preview
        root = common_root([f.path for f in preview.files])
        table = self.query_one("#kw-preview-table", DataTable)
        table.clear()
        for f in preview.files:
            status = plain("ingest", "green") if f.supported else plain(f"skip: {f.skip_reason}", "yellow")
            table.add_row(plain(short_path(f.path, root)), human_size(f.size), plain(f.kind or "—"), status)
        more = " (list cut at 5000 files)" if preview.truncated else ""
        self.query_one("#kw-preview-summary", Static).update(
            f"Collection {self.collection}: {len(preview.files)} files{more}, {len(preview.ingested)} to ingest "
            f"({human_size(preview.total_bytes)}), {len(preview.skipped)} skipped."
        )
        self.query_one("#kw-ingest", Button).disabled = not preview.ingested

    def _ingest(self) -> None:
        if self.preview is None or not self.preview.ingested or self.running:
            return
        self.running = True
        self._go("ingest")
        self.query_one("#kw-stage", Label).update("Starting…")
        self.query_one(ProgressBar).update(total=None, progress=0)
        self.query_one("#kw-report-summary", Static).update("")
        self.query_one("#kw-report", DataTable).clear()
        self._set_finished(False)
        pinned = self.query_one("#kw-pinned", Checkbox).value
        self.post_message(self.IngestRequested(list(self.selected), self.collection, pinned))

    # --------------------------------------------------------------- ingest

    def _set_finished(self, finished: bool) -> None:
        self.query_one("#kw-cancel", Button).disabled = finished
        self.query_one("#kw-browse", Button).disabled = not finished
        self.query_one("#kw-restart", Button).disabled = not finished

    def show_progress(self, stage: str, done: int, total: int, message: str) -> None:
        self.query_one(ProgressBar).update(total=max(total, 1), progress=done)
        root = common_root([f.path for f in self.preview.files]) if self.preview else ""
        self.query_one("#kw-stage", Label).update(
            f"{stage}: {done}/{total} files · {one_line(short_path(message, root), 80)}"
        )

    def show_report(self, rows: list[tuple[str, str, str]], summary: str) -> None:
        """The finished ingest: one row per file (path, result, detail) and a summary line."""
        self.running = False
        self._set_finished(True)
        self.query_one("#kw-stage", Label).update("Finished")
        bar = self.query_one(ProgressBar)
        bar.update(total=max(bar.total or 1, 1), progress=max(bar.total or 1, 1))
        root = common_root([path for path, _, _ in rows])
        styles = {"added": "green", "updated": "green", "unchanged": "dim", "skipped": "yellow", "duplicate": "yellow"}
        table = self.query_one("#kw-report", DataTable)
        table.clear()
        for path, result, detail in rows:
            table.add_row(plain(short_path(path, root)), plain(result, styles.get(result, "")), plain(detail))
        self.query_one("#kw-report-summary", Static).update(summary)

    def show_failure(self, message: str, cancelled: bool = False) -> None:
        self.running = False
        self._set_finished(True)
        self.query_one("#kw-stage", Label).update("Cancelled" if cancelled else "Failed")
        self.query_one("#kw-report-summary", Static).update(clean(message))

    def restart(self) -> None:
        self.selected.clear()
        self.preview = None
        self._show_selected()
        self._go("files")
