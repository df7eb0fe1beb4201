"""DuckDB's per-execute pandas probe is spared when pandas is absent, and pandas still reads as absent."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap


def test_an_absent_pandas_is_marked_absent_once_and_still_reads_as_absent(tmp_path) -> None:
    if importlib.util.find_spec("pandas") is not None:
        import pytest

        pytest.skip("pandas is installed here: DuckDB uses it and there is nothing to spare")
    # A fresh interpreter: the marker is process-wide.
    code = textwrap.dedent(
        f"""
        import importlib.util, sys
        from pathlib import Path
        from workbench.engine.store.db import Database

        db = Database(Path({str(tmp_path)!r}))
        assert db.fetchall("SELECT ?", [7]) == [(7,)]
        assert sys.modules["pandas"] is None
        assert importlib.util.find_spec("pandas") is None
        try:
            import pandas
        except ModuleNotFoundError:
            pass
        else:
            raise AssertionError("pandas imported")
        db.close()
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
