"""Ingestion over HTTP never reads the workbench's own files, even when a workspace root holds the home."""

from __future__ import annotations

from pathlib import Path


def test_ingest_refuses_the_home_and_folders_holding_it(live, tmp_path: Path) -> None:
    home = live.engine.home
    assert home.resolve().is_relative_to(tmp_path.resolve())
    live.engine.add_workspace_root(str(tmp_path))  # writes config.json into the home
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Notes\n\nThe workbench keeps its settings private.\n")
    (tmp_path / "into-home").symlink_to(home, target_is_directory=True)
    with live.client() as http:
        for path in (str(home / "config.json"), str(home), str(tmp_path), str(tmp_path / "into-home")):
            refused = http.post("/workbench/v1/knowledge/ingest", json={"paths": [path], "collection": "c"})
            assert refused.status_code == 403, (path, refused.text)
            assert "workbench's own files" in refused.json()["error"]["message"]
        allowed = http.post("/workbench/v1/knowledge/ingest", json={"paths": [str(docs)], "collection": "c"})
        assert allowed.status_code == 200 and "ingest_finished" in allowed.text
    assert [d.path for d in live.engine.list_documents("c")] == [str((docs / "a.md").resolve())]
