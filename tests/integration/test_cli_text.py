"""Command-line arguments that are not valid UTF-8: one sentence and exit 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import cli_env


def test_an_undecodable_argument_is_refused_with_one_sentence(workbench_home: Path) -> None:
    # `workbench remember k "$(printf 'x\x9b')"`: Python hands b"x\x9b" over as "x\udc9b"
    result = subprocess.run(
        [sys.executable, "-m", "workbench", "remember", "k", b"x\x9b"],
        capture_output=True,
        text=True,
        env=cli_env(workbench_home),
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "workbench: error: argument 3 ('x\ufffd') is not valid UTF-8 text; check the terminal's encoding."
    )
    assert not (workbench_home / "workbench.duckdb").exists()  # refused before anything opened
