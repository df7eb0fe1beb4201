"""The DuckDB store: migrations, the owner lock, restarts, damaged files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_env
from workbench.engine.engine import Engine
from workbench.engine.errors import StoreError, StoreLocked
from workbench.engine.store.db import DB_FILE, Database
from workbench.engine.store.migrations import MIGRATIONS, Migration

HOLD = """
import sys, time
from workbench.engine.engine import Engine
engine = Engine(sys.argv[1])
{extra}
print("ready", flush=True)
time.sleep(120)
"""


def _holder(home: Path, extra: str = "") -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD.format(extra=extra), str(home)],
        stdout=subprocess.PIPE,
        text=True,
        env=cli_env(home),
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_migrations_are_recorded_and_idempotent(workbench_home: Path):
    with Engine(workbench_home) as engine:
        rows = engine.db.fetchall("SELECT version, name FROM schema_migrations ORDER BY version")
        assert rows == [(m.version, m.name) for m in MIGRATIONS]
    with Engine(workbench_home) as engine:  # reopening applies nothing twice
        assert engine.db.schema_version() == MIGRATIONS[-1].version
        assert len(engine.db.fetchall("SELECT * FROM schema_migrations")) == len(MIGRATIONS)


def test_failed_migration_rolls_back_whole(workbench_home: Path):
    workbench_home.mkdir(parents=True)
    broken = MIGRATIONS + (Migration(99, "broken", ("CREATE TABLE ok_table (x INTEGER)", "THIS IS NOT SQL")),)
    import duckdb

    with pytest.raises(duckdb.Error):  # the statement that is not SQL
        Database(workbench_home, broken)
    db = Database(workbench_home)
    try:
        assert db.schema_version() == MIGRATIONS[-1].version
        tables = {r[0] for r in db.fetchall("SELECT table_name FROM information_schema.tables")}
        assert "ok_table" not in tables
    finally:
        db.close()


def test_newer_schema_is_refused_clearly(workbench_home: Path):
    with Engine(workbench_home) as engine:
        engine.db.execute("INSERT INTO schema_migrations VALUES (999, 'future', now())")
    with pytest.raises(StoreError, match="newer than this workbench knows"):
        Engine(workbench_home)


def test_second_process_is_told_who_holds_the_home(workbench_home: Path):
    holder = _holder(workbench_home)
    try:
        with pytest.raises(StoreLocked) as info:
            Engine(workbench_home)
        message = str(info.value)
        assert f"process {holder.pid}" in message
        assert str(workbench_home.resolve()) in message
        assert "close it" in message
    finally:
        holder.kill()
        holder.wait()


def test_lock_names_the_port_of_a_serving_owner(workbench_home: Path):
    holder = _holder(workbench_home, extra="engine.db.owner.set_port(8765)")
    try:
        with pytest.raises(StoreLocked, match=r"--remote http://127\.0\.0\.1:8765"):
            Engine(workbench_home)
    finally:
        holder.kill()
        holder.wait()


def test_kill_9_releases_the_lock_and_keeps_committed_data(workbench_home: Path):
    extra = "s = engine.create_session('survives', None, 'be brief')\nopen(sys.argv[1] + '/sid', 'w').write(s.id)"
    holder = _holder(workbench_home, extra=extra)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    session_id = (workbench_home / "sid").read_text()
    with Engine(workbench_home) as engine:
        session = engine.get_session(session_id)
        assert session.title == "survives" and session.system_prompt == "be brief"


def test_cli_reports_a_held_home_in_one_sentence(workbench_home: Path):
    holder = _holder(workbench_home)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "workbench", "sessions", "list"],
            capture_output=True,
            text=True,
            env=cli_env(workbench_home),
        )
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert f"process {holder.pid}" in result.stderr
    finally:
        holder.kill()
        holder.wait()


def test_damaged_database_file_gives_a_clear_error(workbench_home: Path):
    workbench_home.mkdir(parents=True)
    (workbench_home / DB_FILE).write_bytes(os.urandom(8192))
    with pytest.raises(StoreError) as info:
        Engine(workbench_home)
    assert str(workbench_home / DB_FILE) in str(info.value)
    # the lock was released: a repaired home opens
    (workbench_home / DB_FILE).unlink()
    with Engine(workbench_home) as engine:
        assert engine.list_sessions() == []


def test_broken_config_gives_a_clear_error(workbench_home: Path):
    from workbench.engine.errors import InvalidRequest

    workbench_home.mkdir(parents=True)
    (workbench_home / "config.json").write_text("{not json")
    with pytest.raises(InvalidRequest, match="config.json is not valid JSON"):
        Engine(workbench_home)
    (workbench_home / "config.json").write_text('{"n_ctx": 5}')
    with pytest.raises(InvalidRequest, match="n_ctx"):
        Engine(workbench_home)


def test_home_defaults_to_env_and_flag_overrides(tmp_path: Path, workbench_home: Path):
    from workbench.engine.config import resolve_home

    assert resolve_home() == workbench_home.resolve()
    assert resolve_home(tmp_path / "other") == (tmp_path / "other").resolve()


def test_messages_written_before_migration_8_read_back_unchanged(workbench_home: Path):
    workbench_home.mkdir(parents=True)
    old = Database(workbench_home, MIGRATIONS[:7])
    old.execute("INSERT INTO sessions VALUES ('ses_old', 'Old chat', NULL, NULL, now(), now())")
    old.execute("INSERT INTO messages VALUES ('msg_1', 'ses_old', 1, 'user', 'hello from before', NULL, now())")
    old.close()
    with Engine(workbench_home) as engine:
        assert engine.db.schema_version() == MIGRATIONS[-1].version
        [message] = engine.session_messages("ses_old")
        assert (message.content, message.run_id, message.generation) == ("hello from before", None, None)
