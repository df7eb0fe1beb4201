"""A file name that is not valid UTF-8 is reported and skipped; the rest of the ingest is stored."""

from __future__ import annotations

import os
from pathlib import Path


def test_a_non_utf8_file_name_is_skipped_not_fatal(mem_engine, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("Tomatoes need six hours of sun a day.\n")
    # b"bad\xff.txt": Python sees it as "bad\udcff.txt" (surrogate-escaped), which no database takes
    fd = os.open(os.fsencode(docs) + b"/bad\xff.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"Basil likes warmth.\n")
    os.close(fd)

    events = list(mem_engine.ingest({"paths": [str(docs)]}))
    report = events[-1].report
    assert report.files_seen == 2 and report.added == 1, report
    (skipped,) = report.skipped
    assert skipped.path == str(docs / "bad\ufffd.txt") and "not valid UTF-8" in skipped.reason
    report.model_dump_json()  # what the CLI and the server send: encodable
    assert [Path(d.path).name for d in mem_engine.list_documents("default")] == ["good.txt"]
