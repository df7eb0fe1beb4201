"""The Knowledge screen: the upload wizard ingests a folder, search shows three scores, browse pins and removes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.tui.conftest import SIZE, make_app, settle, wait_for

ALPHA = "# Zebra crossings\n\nA zebra crossing gives pedestrians priority over cars.\nStriped markings show where.\n"
BETA = "Lighthouses guide ships at night with a rotating lamp.\nKeepers once tended the flame.\n"
GAMMA = "# Bread\n\nSourdough bread rises with wild yeast and lactic bacteria.\n"


def make_folder(root: Path) -> Path:
    folder = root / "docs"
    folder.mkdir()
    (folder / "alpha.md").write_text(ALPHA)
    (folder / "beta.txt").write_text(BETA)
    (folder / "gamma.md").write_text(GAMMA)
    (folder / "image.xyz").write_bytes(b"\x00\x01 not a document")
    return folder


def cells(table, row: int) -> list[str]:
    return [str(c) for c in table.get_row_at(row)]


def test_upload_wizard_ingests_a_folder_then_search_shows_three_scores(tui_engine, tmp_path):
    from textual.widgets import DataTable, Input

    folder = make_folder(tmp_path)

    async def run():
        app = make_app(tui_engine, mode="knowledge")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            await pilot.press("u")
            assert screen.query_one("#kn-tabs").active == "upload"
            screen.query_one("#kw-path", Input).value = str(folder)
            await pilot.click("#kw-add-path")
            wizard = screen.query_one("#kn-wizard")
            assert wizard.selected == [str(folder)]
            await pilot.click("#kw-next-files")
            assert wizard.step == "collection"
            await pilot.press(*"docs", "enter")
            preview = screen.query_one("#kw-preview-table", DataTable)
            await wait_for(pilot, lambda: preview.row_count == 4, what="the preview")
            rows = {cells(preview, i)[0]: cells(preview, i) for i in range(4)}
            assert rows["alpha.md"][2:] == ["markdown", "ingest"]
            assert rows["image.xyz"][3] == "skip: unsupported type .xyz"
            assert "3 to ingest" in str(screen.query_one("#kw-preview-summary").render())

            await pilot.click("#kw-ingest")
            report = screen.query_one("#kw-report", DataTable)
            await wait_for(pilot, lambda: report.row_count == 4, what="the ingest report")
            results = {cells(report, i)[0]: cells(report, i)[1:] for i in range(4)}
            assert results["alpha.md"][0] == "added" and results["alpha.md"][1].startswith("1 chunks")
            assert results["beta.txt"][0] == results["gamma.md"][0] == "added"
            assert results["image.xyz"] == ["skipped", "unsupported file type .xyz"]
            bar = screen.query_one("#kw-progress")
            assert bar.progress == bar.total == 4
            assert "3 added" in str(screen.query_one("#kw-report-summary").render())
            assert sorted(Path(d.path).name for d in tui_engine.list_documents("docs")) == [
                "alpha.md",
                "beta.txt",
                "gamma.md",
            ]

            await settle(pilot)
            await pilot.press("s")
            assert screen.query_one("#kn-tabs").active == "search"
            await wait_for(pilot, lambda: screen.query_one("#ks-collection").value == "docs", what="collections")
            await pilot.press(*"zebra crossing", "enter")
            results_table = screen.query_one("#ks-results", DataTable)
            await wait_for(pilot, lambda: results_table.row_count > 0, what="search results")
            top = cells(results_table, 0)
            assert top[4] == "alpha.md"
            fused, bm25, vector = top[1], top[2], top[3]
            assert float(fused) > 0
            assert bm25.endswith("#1") and float(bm25.split()[0]) > 0
            assert vector.endswith("#1") and float(vector.split()[0]) > 0
            assert top[5].startswith("# Zebra crossings A zebra crossing gives")
            results_table.focus()
            await pilot.press("enter")
            detail = str(screen.query_one("#ks-detail").render())
            assert "alpha.md · chunk 0 · lines" in detail
            assert "Striped markings show where." in detail
            assert "BM25" in detail and "vector" in detail

    asyncio.run(run())


def test_browse_pins_shows_chunks_and_removes_a_document(tui_engine, tmp_path):
    from textual.widgets import DataTable

    folder = make_folder(tmp_path)
    (folder / "odd.md").write_text("# Odd\n\nThis text holds [@click=app.quit]x[/] and [b]markup[/b] literally.\n")
    list(tui_engine.ingest({"paths": [str(folder)], "collection": "notes"}))

    async def run():
        app = make_app(tui_engine, mode="knowledge")
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            collections = screen.query_one("#kb-collections", DataTable)
            assert cells(collections, 0) == ["notes", "4", "4"]
            documents = screen.query_one("#kb-documents", DataTable)
            assert [cells(documents, i)[0] for i in range(documents.row_count)] == [
                "alpha.md",
                "beta.txt",
                "gamma.md",
                "odd.md",
            ]

            documents.focus()
            await pilot.press("p")
            await settle(pilot)
            pinned = {Path(d.path).name: d.pinned for d in tui_engine.list_documents("notes")}
            assert pinned == {"alpha.md": True, "beta.txt": False, "gamma.md": False, "odd.md": False}
            assert cells(documents, 0)[4] == "pinned"

            await pilot.press("down", "down", "down", "enter")
            await settle(pilot)
            chunk_text = str(screen.query_one("#kb-chunk-text").render())
            assert "[@click=app.quit]x[/] and [b]markup[/b]" in chunk_text
            assert screen.query_one("#kb-chunks", DataTable).row_count == 1
            assert "Chunks of odd.md (1)" in str(screen.query_one("#kb-chunks-title").render())

            await pilot.press("delete")
            await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog", what="the dialog")
            assert "Remove odd.md (1 chunks) from notes?" in str(app.screen.query_one("#confirm-question").render())
            await pilot.click("#confirm-yes")
            await settle(pilot)
            assert sorted(Path(d.path).name for d in tui_engine.list_documents("notes")) == [
                "alpha.md",
                "beta.txt",
                "gamma.md",
            ]
            assert documents.row_count == 3
            assert app.is_running

    asyncio.run(run())


def test_knowledge_snapshot(tui_engine, tmp_path, snap_compare):
    folder = make_folder(tmp_path)
    list(tui_engine.ingest({"paths": [str(folder)], "collection": "notes"}))
    list(tui_engine.ingest({"paths": [str(folder / "gamma.md")], "collection": "recipes"}))
    app = make_app(tui_engine, mode="knowledge")

    async def run_before(pilot):
        await settle(pilot)
        pilot.app.screen.query_one("#kb-documents").focus()
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
