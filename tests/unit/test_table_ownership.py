"""Each table has one owner: only its store module writes or reads it in SQL."""

from __future__ import annotations

import re
from pathlib import Path

import workbench

PACKAGE = Path(workbench.__file__).parent
#: table -> the one module (besides the migrations that create it) whose SQL may name it
OWNERS = {
    "agent_runs": "engine/agents/run_store.py",
    "run_events": "engine/agents/run_store.py",
}
SCHEMA = "engine/store/migrations.py"


def _mentions(table: str) -> re.Pattern[str]:
    # `run_events` is also a public method name: only SQL use counts (a table
    # after FROM, INTO, JOIN, UPDATE or TABLE); `agent_runs` counts anywhere.
    if table == "run_events":
        return re.compile(rf"\b(FROM|INTO|JOIN|UPDATE|TABLE)\s+{table}\b", re.IGNORECASE)
    return re.compile(rf"\b{table}\b")


def _offenders(table: str) -> list[str]:
    pattern = _mentions(table)
    allowed = {OWNERS[table], SCHEMA}
    return sorted(
        rel
        for path in PACKAGE.rglob("*.py")
        if (rel := path.relative_to(PACKAGE).as_posix()) not in allowed and pattern.search(path.read_text())
    )


def test_only_the_run_store_touches_the_run_tables():
    for table in OWNERS:
        assert _offenders(table) == [], f"{table} is named outside {OWNERS[table]}"


def test_the_owner_really_names_its_tables():
    """The check above would pass vacuously if the owner were renamed or the patterns broke."""
    for table, owner in OWNERS.items():
        assert _mentions(table).search((PACKAGE / owner).read_text()), (table, owner)
