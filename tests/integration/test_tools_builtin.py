"""Happy paths of the built-in tools, on a real file system, real subprocesses,
a real git repository and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest

from workbench.engine.errors import ToolError
from workbench.engine.tools.base import PERMISSIONS, Tool, ToolContext
from workbench.engine.tools.builtin import files, git, http, python, shell, system

MODULES = [files, shell, http, git, python, system]


def all_tools() -> dict[str, Tool]:
    return {t.name: t for m in MODULES for t in m.tools()}


def call(name: str, args: dict[str, Any], ctx: ToolContext) -> Any:
    return all_tools()[name].run(args, ctx)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    return r


@pytest.fixture
def ctx(root: Path) -> ToolContext:
    return ToolContext(roots=[root], timeout_s=10.0, max_output_chars=16_000)


# ------------------------------------------------------------------ tool metadata


def test_every_tool_is_well_formed() -> None:
    import jsonschema

    tools = [t for m in MODULES for t in m.tools()]
    names = [t.name for t in tools]
    assert len(names) == len(set(names)) == 13
    expected = {
        "read_file": "read",
        "write_file": "write",
        "list_dir": "read",
        "search_files": "read",
        "run_command": "exec",
        "http_fetch": "network",
        "git_status": "read",
        "git_log": "read",
        "git_diff": "read",
        "git_add": "write",
        "git_commit": "write",
        "run_python": "exec",
        "system_metrics": "read",
    }
    for tool in tools:
        assert tool.permission in PERMISSIONS
        if tool.name in expected:
            assert tool.permission == expected[tool.name], tool.name
        assert 3 <= len(tool.examples) <= 5, tool.name
        assert 10 < len(tool.description) < 200, tool.name
        assert tool.description.count(". ") <= 1, tool.name
        jsonschema.Draft202012Validator.check_schema(tool.parameters)
        assert tool.parameters["type"] == "object"
        assert tool.parameters["additionalProperties"] is False
        assert callable(tool.run)
    assert set(expected) <= set(names)


# ----------------------------------------------------------------------- files


def test_read_file_whole_and_range(root: Path, ctx: ToolContext) -> None:
    (root / "notes").mkdir()
    (root / "notes" / "todo.md").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    assert call("read_file", {"path": "notes/todo.md"}, ctx) == "".join(f"line {i}\n" for i in range(1, 11))
    part = call("read_file", {"path": "notes/todo.md", "start_line": 3, "max_lines": 2}, ctx)
    assert part.startswith("line 3\nline 4\n")
    assert "line 5" not in part
    assert "[showing lines 3-4 of 10]" in part
    # absolute paths inside the root work too
    assert call("read_file", {"path": str(root / "notes" / "todo.md"), "max_lines": 1}, ctx).startswith("line 1\n")


def test_read_file_errors(root: Path, ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="does not exist"):
        call("read_file", {"path": "missing.txt"}, ctx)
    (root / "bin.dat").write_bytes(b"\x00\x01\x02abc")
    with pytest.raises(ToolError, match="binary"):
        call("read_file", {"path": "bin.dat"}, ctx)
    with pytest.raises(ToolError, match="folder"):
        call("read_file", {"path": "."}, ctx)


def test_read_file_respects_output_cap(root: Path) -> None:
    (root / "big.txt").write_text("x" * 50 + "\n" * 1 + "y" * 5000 + "\n")
    small = ToolContext(roots=[root], max_output_chars=100)
    out = call("read_file", {"path": "big.txt"}, small)
    assert out.count("x") == 50
    assert out.count("y") == 49
    assert "output size limit" in out


def test_write_file_creates_parents_atomically_and_appends(root: Path, ctx: ToolContext) -> None:
    msg = call("write_file", {"path": "a/b/c.txt", "content": "hello\n"}, ctx)
    assert "a/b/c.txt" in msg
    assert (root / "a" / "b" / "c.txt").read_text() == "hello\n"
    call("write_file", {"path": "a/b/c.txt", "content": "world\n", "append": True}, ctx)
    assert (root / "a" / "b" / "c.txt").read_text() == "hello\nworld\n"
    call("write_file", {"path": "a/b/c.txt", "content": "replaced"}, ctx)
    assert (root / "a" / "b" / "c.txt").read_text() == "replaced"
    # no temporary files left behind
    assert sorted(p.name for p in (root / "a" / "b").iterdir()) == ["c.txt"]


def test_write_file_keeps_mode_and_refuses_git_internals(root: Path, ctx: ToolContext) -> None:
    script = root / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    call("write_file", {"path": "run.sh", "content": "#!/bin/sh\necho hi\n"}, ctx)
    assert script.stat().st_mode & 0o777 == 0o755
    (root / ".git").mkdir()
    with pytest.raises(ToolError, match=r"\.git"):
        call("write_file", {"path": ".git/config", "content": "[core]\n\tfsmonitor = touch /tmp/x\n"}, ctx)
    assert not (root / ".git" / "config").exists()
    with pytest.raises(ToolError, match="folder"):
        call("write_file", {"path": ".", "content": "x"}, ctx)


def test_list_dir(root: Path, ctx: ToolContext) -> None:
    (root / "docs").mkdir()
    (root / "a.txt").write_text("12345")
    (root / "link").symlink_to(root / "a.txt")
    out = call("list_dir", {}, ctx)
    assert out["path"] == "."
    by_name = {e["name"]: e for e in out["entries"]}
    assert by_name["a.txt"] == {"name": "a.txt", "type": "file", "size": 5}
    assert by_name["docs"]["type"] == "dir"
    assert by_name["link"]["type"] == "symlink"
    assert out["total"] == 3 and out["truncated"] is False
    assert call("list_dir", {"path": "docs"}, ctx)["entries"] == []
    with pytest.raises(ToolError, match="not a folder"):
        call("list_dir", {"path": "a.txt"}, ctx)


def test_list_dir_caps_entries(root: Path, ctx: ToolContext) -> None:
    for i in range(files.MAX_LIST_ENTRIES + 20):
        (root / f"f{i:04d}").write_text("")
    out = call("list_dir", {"path": "."}, ctx)
    assert len(out["entries"]) == files.MAX_LIST_ENTRIES
    assert out["truncated"] is True and out["total"] == files.MAX_LIST_ENTRIES + 20


def test_search_files(root: Path, ctx: ToolContext) -> None:
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("import os\n# TODO: fix parse_config\ndef parse_config():\n    pass\n")
    (root / "notes.md").write_text("Budget is fine\nnothing here\n")
    (root / "blob.bin").write_bytes(b"TODO\x00binary")
    (root / "huge.txt").write_bytes(b"TODO\n" * (files.MAX_SEARCH_FILE_BYTES // 5 + 10))
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("TODO in git internals\n")

    out = call("search_files", {"query": "TODO"}, ctx)
    assert out["matches"] == ["src/app.py:2: # TODO: fix parse_config"]
    assert out["truncated"] is False

    out = call("search_files", {"query": r"def \w+_config", "regex": True, "path": "src"}, ctx)
    assert out["matches"] == ["src/app.py:3: def parse_config():"]

    out = call("search_files", {"query": "budget", "ignore_case": True}, ctx)
    assert out["matches"] == ["notes.md:1: Budget is fine"]
    assert call("search_files", {"query": "budget"}, ctx)["matches"] == []

    with pytest.raises(ToolError, match="regular expression"):
        call("search_files", {"query": "(unclosed", "regex": True}, ctx)


def test_search_files_caps_matches(root: Path, ctx: ToolContext) -> None:
    (root / "many.txt").write_text("hit\n" * 1000)
    out = call("search_files", {"query": "hit"}, ctx)
    assert out["count"] == files.MAX_SEARCH_MATCHES == len(out["matches"])
    assert out["truncated"] is True


# ----------------------------------------------------------------------- shell


def test_run_command_echo_in_root(root: Path, ctx: ToolContext) -> None:
    out = call("run_command", {"argv": ["echo", "hello", "world"]}, ctx)
    assert out == {"exit_code": 0, "stdout": "hello world\n", "stderr": "", "truncated": False}
    out = call("run_command", {"argv": ["pwd"]}, ctx)
    assert out["stdout"].strip() == str(root.resolve())
    (root / "sub").mkdir()
    out = call("run_command", {"argv": ["pwd"], "cwd": "sub"}, ctx)
    assert out["stdout"].strip() == str((root / "sub").resolve())


def test_run_command_exit_code_and_stderr(ctx: ToolContext) -> None:
    out = call("run_command", {"argv": ["sh", "-c", "echo oops >&2; exit 3"]}, ctx)
    assert out["exit_code"] == 3
    assert out["stderr"] == "oops\n"
    with pytest.raises(ToolError, match="not found"):
        call("run_command", {"argv": ["no-such-program-xyz"]}, ctx)


def test_run_command_timeout_kills_the_process_group(root: Path) -> None:
    marker = "30.4242"
    quick = ToolContext(roots=[root], timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(ToolError, match="did not finish within 1 seconds"):
        call("run_command", {"argv": ["sh", "-c", f"sleep {marker} & sleep {marker}"]}, quick)
    elapsed = time.monotonic() - started
    assert elapsed < 4.0
    time.sleep(0.2)
    survivors = [
        p
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] and marker in " ".join(p.info["cmdline"]) and p.status() != psutil.STATUS_ZOMBIE
    ]
    assert survivors == []


def test_run_command_plain_sleep_timeout(root: Path) -> None:
    quick = ToolContext(roots=[root], timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(ToolError, match="did not finish"):
        call("run_command", {"argv": ["sleep", "30"]}, quick)
    assert time.monotonic() - started < 3.0


def test_run_command_output_cap(root: Path) -> None:
    small = ToolContext(roots=[root], max_output_chars=1000)
    out = call("run_command", {"argv": ["python3", "-c", "print('x' * 100000)"]}, small)
    assert out["exit_code"] == 0
    assert out["stdout"] == "x" * 1000
    assert out["truncated"] is True


def test_run_command_output_flood_is_stopped(root: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ToolError, match="far more output"):
        call("run_command", {"argv": ["yes"]}, ToolContext(roots=[root], timeout_s=20.0, max_output_chars=1000))
    assert time.monotonic() - started < 10.0


def test_run_command_hides_secret_environment(root: Path, ctx: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WB_DEMO_API_KEY", "sk-should-not-leak")
    monkeypatch.setenv("WB_DEMO_PLAIN", "visible")
    out = call("run_command", {"argv": ["env"]}, ctx)
    assert "WB_DEMO_PLAIN=visible" in out["stdout"]
    assert "sk-should-not-leak" not in out["stdout"]


# ------------------------------------------------------------------------ http


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        if self.path == "/hello":
            body, ctype = "héllo wörld".encode("latin-1"), "text/plain; charset=latin-1"
        elif self.path == "/page":
            body = b"<html><head><title>T</title><style>p{}</style></head><body><h1>Head</h1><p>Para &amp; more</p><script>x()</script></body></html>"
            ctype = "text/html; charset=utf-8"
        elif self.path == "/big":
            body, ctype = b"a" * 300_000, "text/plain"
        elif self.path == "/json":
            body, ctype = json.dumps({"ok": True}).encode(), "application/json"
        elif self.path == "/to-hello":
            self.send_response(302)
            self.send_header("Location", "/hello")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def web() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _base(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_http_fetch_local_server_when_private_allowed(web: ThreadingHTTPServer, root: Path) -> None:
    ctx = ToolContext(roots=[root], allow_private_network=True, timeout_s=5.0)
    out = call("http_fetch", {"url": _base(web) + "/hello"}, ctx)
    assert out["status"] == 200
    assert out["text"] == "héllo wörld"
    assert out["truncated"] is False
    assert out["redirects"] == []

    page = call("http_fetch", {"url": _base(web) + "/page"}, ctx)
    assert page["title"] == "T"
    assert "Head" in page["text"] and "Para & more" in page["text"]
    assert "x()" not in page["text"] and "p{}" not in page["text"]
    raw = call("http_fetch", {"url": _base(web) + "/page", "raw": True}, ctx)
    assert "<script>" in raw["text"]

    redirected = call("http_fetch", {"url": _base(web) + "/to-hello"}, ctx)
    assert redirected["text"] == "héllo wörld"
    assert redirected["redirects"] == [_base(web) + "/hello"]
    assert json.loads(call("http_fetch", {"url": _base(web) + "/json"}, ctx)["text"]) == {"ok": True}
    assert web.requests == ["/hello", "/page", "/page", "/to-hello", "/hello", "/json"]  # type: ignore[attr-defined]


def test_http_fetch_size_cap_truncates(web: ThreadingHTTPServer, root: Path) -> None:
    ctx = ToolContext(roots=[root], allow_private_network=True, timeout_s=5.0, max_output_chars=500_000)
    out = call("http_fetch", {"url": _base(web) + "/big", "max_bytes": 1000}, ctx)
    assert out["truncated"] is True
    assert out["text"] == "a" * 1000
    full = call("http_fetch", {"url": _base(web) + "/big"}, ctx)
    assert full["truncated"] is False and len(full["text"]) == 300_000
    capped = call(
        "http_fetch",
        {"url": _base(web) + "/big"},
        ToolContext(roots=[root], allow_private_network=True, max_output_chars=200),
    )
    assert capped["truncated"] is True and len(capped["text"]) == 200


def test_http_fetch_refuses_local_server_by_default(web: ThreadingHTTPServer, root: Path) -> None:
    with pytest.raises(ToolError, match="private"):
        call("http_fetch", {"url": _base(web) + "/hello"}, ToolContext(roots=[root]))
    assert web.requests == []  # type: ignore[attr-defined]


# ------------------------------------------------------------------------- git


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(root: Path) -> Path:
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.email", "tester@example.com")
    _git(root, "config", "user.name", "Tester")
    return root


def test_git_status_add_commit_log_diff(repo: Path, ctx: ToolContext) -> None:
    (repo / "a.txt").write_text("one\n")
    status = call("git_status", {}, ctx)
    assert "## No commits yet on main" in status
    assert "?? a.txt" in status

    staged = call("git_add", {"paths": ["a.txt"]}, ctx)
    assert "A\ta.txt" in staged
    assert "A  a.txt" in call("git_status", {"repo": "."}, ctx)

    committed = call("git_commit", {"message": "first commit"}, ctx)
    assert "first commit" in committed
    assert call("git_status", {}, ctx).strip() == "## main"

    (repo / "a.txt").write_text("one\ntwo\n")
    (repo / "b.txt").write_text("bee\n")
    call("git_add", {"paths": ["b.txt"]}, ctx)
    call("git_commit", {"message": "add b"}, ctx)

    log = call("git_log", {"max_count": 5}, ctx)
    lines = log.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("Tester: add b") and lines[1].endswith("Tester: first commit")
    assert call("git_log", {"max_count": 1}, ctx).strip().endswith("add b")
    assert call("git_log", {"ref": "HEAD~1"}, ctx).strip().endswith("first commit")

    diff = call("git_diff", {}, ctx)
    assert "+two" in diff and "a.txt" in diff
    assert call("git_diff", {"path": "b.txt"}, ctx) == "No differences."
    against = call("git_diff", {"ref": "HEAD~1"}, ctx)
    assert "+bee" in against and "+two" in against
    assert "+two" in call("git_diff", {"path": "a.txt", "ref": "HEAD"}, ctx)


def test_git_in_subfolder_repo_and_errors(root: Path, ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="not inside a git work tree"):
        call("git_status", {}, ctx)
    sub = root / "proj"
    sub.mkdir()
    _git(sub, "init", "-q")
    (sub / "x.py").write_text("print(1)\n")
    assert "?? x.py" in call("git_status", {"repo": "proj"}, ctx)
    assert call("git_log", {"repo": "proj"}, ctx) == "No commits yet."
    with pytest.raises(ToolError, match="git commit failed"):
        call("git_commit", {"repo": "proj", "message": "nothing staged"}, ctx)


# ---------------------------------------------------------------------- python


def test_run_python_prints_and_runs_in_root(root: Path, ctx: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WB_SECRET_TOKEN", "hidden")
    code = "import os, sys\nprint(2**100)\nprint(os.getcwd())\nprint(sys.flags.isolated, os.environ.get('WB_SECRET_TOKEN'))"
    out = call("run_python", {"code": code}, ctx)
    assert out["exit_code"] == 0
    lines = out["stdout"].splitlines()
    assert lines == [str(2**100), str(root.resolve()), "1 None"]
    err = call("run_python", {"code": "raise SystemExit('bad')"}, ctx)
    assert err["exit_code"] == 1 and "bad" in err["stderr"]


def test_run_python_needs_a_root_and_times_out(root: Path) -> None:
    # like run_command: without a root it would run in some folder nobody chose
    with pytest.raises(ToolError, match="run_python needs a workspace root"):
        call("run_python", {"code": "print(1)"}, ToolContext())
    started = time.monotonic()
    with pytest.raises(ToolError, match="did not finish"):
        call("run_python", {"code": "import time; time.sleep(30)"}, ToolContext(roots=[root], timeout_s=0.5))
    assert time.monotonic() - started < 3.0


# ---------------------------------------------------------------------- system


def test_system_metrics_fields(root: Path, ctx: ToolContext) -> None:
    out = call("system_metrics", {}, ctx)
    assert 0.0 <= out["cpu_percent"] <= 100.0 * (out["cpu_count"] or 1)
    assert out["cpu_count"] >= 1
    assert len(out["load_average"]) == 3
    assert out["memory"]["total_bytes"] > out["memory"]["used_bytes"] > 0
    assert 0 < out["memory"]["percent"] < 100
    assert [d["path"] for d in out["disks"]] == [str(root.resolve())]
    assert out["disks"][0]["total_bytes"] > 0
    assert out["process_count"] > 1
    json.dumps(out)
    assert [d["path"] for d in call("system_metrics", {}, ToolContext())["disks"]] == ["/"]
