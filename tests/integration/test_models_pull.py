"""`workbench models pull`: a real HTTP server on 127.0.0.1 speaking the Hub's wire format
(tests/hf_hub_server.py), reached through HF_ENDPOINT; never the internet."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PYTHON, cli_env
from tests.hf_hub_server import FakeHub
from workbench.engine.errors import InvalidRequest, NotFound, ProviderUnreachable
from workbench.engine.inference import hub

REPO = "acme/Tiny-Instruct-GGUF"
NAME = "tiny-instruct-q4_k_m.gguf"
SIZE = 3 * 1024 * 1024 + 123  # several chunks


def gguf_bytes(seed: int = 1) -> bytes:
    return b"GGUF" + hashlib.shake_256(str(seed).encode()).digest(SIZE - 4)


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch):
    with FakeHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield server


def pull_cli(home: Path, server: FakeHub, *args: str) -> subprocess.CompletedProcess:
    env = cli_env(home)
    env["HF_ENDPOINT"] = server.url
    return subprocess.run(
        [PYTHON, "-m", "workbench", "models", "pull", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_pull_downloads_verifies_and_lists_the_model(fake_hub: FakeHub, workbench_home: Path):
    data = gguf_bytes()
    fake_hub.add(REPO, NAME, data)
    fake_hub.add(REPO, "README.md", b"# card")
    result = pull_cli(workbench_home, fake_hub, f"{REPO}/{NAME}")
    assert result.returncode == 0, result.stderr
    target = workbench_home / "models" / NAME
    assert target.read_bytes() == data
    assert (
        result.stdout == f"Downloaded and verified: {target} (sha256 {hashlib.sha256(data).hexdigest()[:12]}...). "
        f"Use it with --model {target.stem}.\n"
    )
    assert "Traceback" not in result.stderr and f"Pulling {REPO}/{NAME} (3 MB)" in result.stderr
    assert [p.name for p in (workbench_home / "models").iterdir()] == [NAME]  # no .part left
    # The listing came from the tree API; the bytes from the resolve URL, through its redirect.
    methods_paths = [(m, p.split("/")[1]) for m, p, _ in fake_hub.requests]
    assert methods_paths == [("GET", "api"), ("GET", REPO.split("/")[0]), ("GET", "cdn")]

    listed = subprocess.run(
        [PYTHON, "-m", "workbench", "models", "--json"],
        capture_output=True,
        text=True,
        env=cli_env(workbench_home),
        timeout=60,
    )
    assert {m["id"]: m["source"] for m in json.loads(listed.stdout)}[target.stem] == "models-folder"

    again = pull_cli(workbench_home, fake_hub, f"{REPO}/{NAME}")
    assert again.returncode == 0 and again.stdout.startswith(f"Already present: {target}")
    assert [m for m, p, _ in fake_hub.requests if p.startswith("/cdn/")] == ["GET"]  # not fetched twice


def test_a_broken_download_resumes_with_a_range_request(fake_hub: FakeHub, workbench_home: Path):
    data = gguf_bytes(2)
    fake_hub.add(REPO, NAME, data, cut_after=1024 * 1024 + 5)
    models = workbench_home / "models"
    with pytest.raises(ProviderUnreachable, match="run the same command again to resume it"):
        hub.pull(f"{REPO}/{NAME}", models)
    part = models / f".{NAME}.part"
    kept = part.stat().st_size
    assert 0 < kept <= 1024 * 1024 + 5 and not (models / NAME).exists()

    seen: list[tuple[int, int]] = []
    result = hub.pull(f"{REPO}/{NAME}", models, progress=lambda done, total: seen.append((done, total)))
    assert result.status == "resumed" and (models / NAME).read_bytes() == data and not part.exists()
    cdn = [rng for _, p, rng in fake_hub.requests if p.startswith("/cdn/")]
    assert cdn == [None, f"bytes={kept}-"]
    assert seen[0][0] > kept and seen[-1] == (SIZE, SIZE)


def test_a_corrupt_download_is_deleted_and_never_becomes_a_model(fake_hub: FakeHub, workbench_home: Path):
    fake_hub.add(REPO, NAME, gguf_bytes(3), corrupt=True)
    result = pull_cli(workbench_home, fake_hub, f"{REPO}/{NAME}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"workbench: error: The downloaded {NAME} does not match the repository's size and sha256, "
        "so it was deleted; run the command again."
    )
    assert "Traceback" not in result.stderr
    assert list((workbench_home / "models").iterdir()) == []


def test_repository_without_a_file_name_gets_its_4_bit_gguf(fake_hub: FakeHub, workbench_home: Path):
    for quant in ("Q8_0", "Q4_K_M", "Q2_K"):
        fake_hub.add(REPO, f"Tiny-{quant}.gguf", gguf_bytes(hash(quant) % 100)[:4096])
    result = hub.pull(REPO, workbench_home / "models")
    assert result.path.name == "Tiny-Q4_K_M.gguf" and result.size == 4096


def test_bad_specs_and_missing_files_are_one_sentence(fake_hub: FakeHub, workbench_home: Path):
    fake_hub.add(REPO, "a-Q8_0.gguf", b"GGUF1")
    fake_hub.add(REPO, "b-Q8_0.gguf", b"GGUF2")
    for spec in (
        f"{REPO}/../../../etc/evil.gguf",
        f"{REPO}/sub/..%2f/x.gguf",
        "../../x",
        "acme",
        f"{REPO}/notes.txt",
        f"{REPO}/.hidden.gguf",
        f"{REPO}/a\\..\\b.gguf",
    ):
        with pytest.raises(InvalidRequest):
            hub.parse_spec(spec)
    with pytest.raises(NotFound, match=f"Repository {REPO} has no file missing.gguf"):
        hub.pull(f"{REPO}/missing.gguf", workbench_home / "models")
    with pytest.raises(NotFound, match="Hugging Face has no repository acme/nothing"):
        hub.pull("acme/nothing", workbench_home / "models")
    with pytest.raises(InvalidRequest, match="holds 2 GGUF files .*name one"):
        hub.pull(REPO, workbench_home / "models")
    traversal = pull_cli(workbench_home, fake_hub, f"{REPO}/../../evil.gguf")
    assert traversal.returncode == 1 and traversal.stderr.count("\n") == 1
    assert "is not a safe file path inside the repository" in traversal.stderr
    assert not (workbench_home / "models").exists() or list((workbench_home / "models").iterdir()) == []
    assert not (workbench_home.parent / "evil.gguf").exists()


def test_an_existing_different_file_is_not_overwritten(fake_hub: FakeHub, workbench_home: Path):
    fake_hub.add(REPO, NAME, gguf_bytes(4)[:2048])
    models = workbench_home / "models"
    models.mkdir(parents=True)
    (models / NAME).write_bytes(b"GGUF mine")
    with pytest.raises(Exception, match="already exists and differs"):
        hub.pull(f"{REPO}/{NAME}", models)
    assert (models / NAME).read_bytes() == b"GGUF mine"


def test_the_endpoint_comes_from_hf_endpoint(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert hub.endpoint() == "https://huggingface.co"
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9/")
    assert hub.endpoint() == "http://127.0.0.1:9"
    assert os.environ["HF_ENDPOINT"].startswith("http://127.0.0.1")


def test_models_listing_recommends_an_upgrade(workbench_home: Path):
    listed = subprocess.run(
        [PYTHON, "-m", "workbench", "models"], capture_output=True, text=True, env=cli_env(workbench_home), timeout=60
    )
    spec = hub.RECOMMENDED_MODELS[0][0]
    assert listed.returncode == 0
    assert "Recommended upgrade for chat and agents" in listed.stdout
    assert f"workbench models pull {spec}\n" in listed.stdout
    assert hub.parse_spec(spec) == ("Qwen/Qwen2.5-1.5B-Instruct-GGUF", "qwen2.5-1.5b-instruct-q4_k_m.gguf")
