"""Download a GGUF model from Hugging Face: `workbench models pull REPO[/FILE]`.

The only network access the workbench makes on its own behalf, and only when
the user asks for it. It speaks the Hub's public wire format with httpx:

* `GET {endpoint}/api/models/{repo}/tree/main[/{folder}]` lists a folder:
  JSON entries `{"type": "file", "path", "size", "oid", "lfs": {"oid":
  SHA256, "size", "pointerSize"}}`; GGUFs are LFS files, so the listing gives
  each one's size and sha256 before a byte is fetched. Without `lfs`, the
  headers of `HEAD /{repo}/resolve/main/{file}` say the same
  (`X-Linked-Size`, and `X-Linked-Etag` holding the sha256 of an LFS file).
* `GET {endpoint}/{repo}/resolve/main/{file}` serves the bytes, usually by a
  redirect to a CDN (followed; httpx drops the Authorization header when the
  origin changes). A `Range: bytes=N-` header resumes: 206 with
  `Content-Range: bytes N-END/TOTAL`, or 200 when the server ignores it.

`HF_ENDPOINT` overrides the endpoint (as huggingface_hub does), which is how
the tests point it at a server on 127.0.0.1; `HF_TOKEN`, if set, is sent for
gated repositories. The file is written to `<models>/.<name>.part`, hashed
as it arrives (a resumed part is hashed first), and renamed to `<name>` only
when its size and sha256 match the repository's: the models folder never
holds a truncated or corrupt `.gguf`. A file that fails the check is deleted.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from workbench.engine.errors import InvalidRequest, NotFound, ProviderError, ProviderUnreachable, StoreError

DEFAULT_ENDPOINT = "https://huggingface.co"
REVISION = "main"
CHUNK_BYTES = 1024 * 1024
#: small instruct GGUFs that follow instructions and JSON grammars well on a laptop CPU
RECOMMENDED_MODELS = (
    (
        "Qwen/Qwen2.5-1.5B-Instruct-GGUF/qwen2.5-1.5b-instruct-q4_k_m.gguf",
        "1.1 GB",
        "follows instructions, JSON schemas and tool choices far better than the 135M default",
    ),
    (
        "bartowski/SmolLM2-1.7B-Instruct-GGUF/SmolLM2-1.7B-Instruct-Q4_K_M.gguf",
        "1.1 GB",
        "the default model's big sibling, same chat template",
    ),
)
_REPO_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}\.gguf$", re.IGNORECASE)
#: preferred quantisations when a repository holds several GGUFs and none is named
_PREFERRED_QUANTS = ("q4_k_m", "q4_k_s", "q4_0", "q5_k_m", "q8_0")

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RemoteFile:
    """One GGUF of a repository, as its metadata describes it."""

    repo: str
    path: str  # inside the repository
    size: int
    sha256: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class PullResult:
    path: Path
    size: int
    sha256: str
    status: str  # "downloaded", "resumed" or "present"


def endpoint() -> str:
    """The Hub's base URL: `$HF_ENDPOINT` or huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def parse_spec(spec: str) -> tuple[str, str | None]:
    """`OWNER/NAME[/FILE]` -> (repo, file or None), refusing anything that could escape a folder."""
    parts = spec.strip().strip("/").split("/")
    if len(parts) < 2 or not all(_REPO_PART.match(p) for p in parts[:2]):
        raise InvalidRequest(f"{spec!r} is not a Hugging Face repository: write OWNER/NAME or OWNER/NAME/FILE.gguf.")
    repo = "/".join(parts[:2])
    if len(parts) == 2:
        return repo, None
    file_parts = parts[2:]
    if any(p in ("", ".", "..") or "\\" in p or not _REPO_PART.match(p.replace("+", "_")) for p in file_parts):
        raise InvalidRequest(f"{'/'.join(file_parts)!r} is not a safe file path inside the repository.")
    if not _FILE_NAME.match(file_parts[-1]):
        raise InvalidRequest(f"{file_parts[-1]!r} is not a .gguf file name; name a GGUF file of the repository.")
    return repo, "/".join(file_parts)


def _client() -> Any:
    import httpx

    headers = {"User-Agent": "workbench"}
    token = os.environ.get("HF_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    # Proxies from the environment are honoured (trust_env): this one goes to the internet.
    return httpx.Client(headers=headers, follow_redirects=True, timeout=httpx.Timeout(30.0, read=120.0))


def _get(client: Any, url: str, what: str, **kwargs: Any) -> Any:
    import httpx

    try:
        response = client.get(url, **kwargs)
    except httpx.HTTPError as exc:
        raise ProviderUnreachable(f"Cannot reach {endpoint()} for {what}: {type(exc).__name__}.") from None
    if response.status_code in (401, 403):
        raise ProviderError(
            f"Hugging Face refused access to {what} (HTTP {response.status_code}); "
            "a gated repository needs HF_TOKEN set to a token that accepted its licence."
        )
    if response.status_code == 404:
        raise NotFound(f"Hugging Face has no {what}.")
    if response.status_code >= 400:
        raise ProviderError(f"Hugging Face answered HTTP {response.status_code} for {what}.")
    return response


def list_gguf_files(client: Any, repo: str, folder: str = "") -> list[RemoteFile]:
    """The GGUF files of one folder of `repo`, with size and sha256 from the tree API."""
    url = f"{endpoint()}/api/models/{repo}/tree/{REVISION}" + (f"/{quote(folder)}" if folder else "")
    response = _get(client, url, f"repository {repo}")
    try:
        entries = response.json()
        files = []
        for entry in entries:
            path = entry.get("path", "")
            if entry.get("type") != "file" or not path.lower().endswith(".gguf"):
                continue
            lfs = entry.get("lfs") or {}
            sha = lfs.get("oid") or lfs.get("sha256") or ""
            files.append(RemoteFile(repo, path, int(lfs.get("size", entry.get("size", 0))), str(sha).lower()))
    except (ValueError, TypeError, AttributeError):
        raise ProviderError(f"Hugging Face sent a file listing of {repo} that is not in the expected format.") from None
    return files


def _from_headers(client: Any, repo: str, path: str) -> RemoteFile:
    """Size and sha256 of an LFS file from the resolve URL's headers (when the listing lacks them)."""
    import httpx

    url = f"{endpoint()}/{repo}/resolve/{REVISION}/{quote(path)}"
    try:
        response = client.head(url, follow_redirects=False, headers={"Accept-Encoding": "identity"})
    except httpx.HTTPError as exc:
        raise ProviderUnreachable(f"Cannot reach {endpoint()} for {repo}/{path}: {type(exc).__name__}.") from None
    etag = (response.headers.get("X-Linked-Etag") or "").removeprefix("W/").strip('"').lower()
    size = response.headers.get("X-Linked-Size")
    if response.status_code >= 400 or not re.fullmatch(r"[0-9a-f]{64}", etag) or not (size or "").isdigit():
        raise ProviderError(f"Hugging Face gives no sha256 for {repo}/{path}, so its download could not be verified.")
    return RemoteFile(repo, path, int(size), etag)  # type: ignore[arg-type]


def resolve_file(client: Any, repo: str, path: str | None) -> RemoteFile:
    """The GGUF to download: the one named, or the repository's only (or preferred 4-bit) GGUF."""
    folder = path.rsplit("/", 1)[0] if path and "/" in path else ""
    files = list_gguf_files(client, repo, folder)
    if path is None:
        if not files:
            raise NotFound(
                f"Repository {repo} holds no .gguf file at its top level; name the file as {repo}/FILE.gguf."
            )
        chosen = files[0] if len(files) == 1 else None
        for quant in _PREFERRED_QUANTS if chosen is None else ():
            matching = [f for f in files if quant in f.name.lower() and "-of-" not in f.name.lower()]
            if len(matching) == 1:
                chosen = matching[0]
                break
        if chosen is None:
            names = ", ".join(f.name for f in files[:8]) + (", ..." if len(files) > 8 else "")
            raise InvalidRequest(f"Repository {repo} holds {len(files)} GGUF files ({names}); name one as {repo}/FILE.")
        found = chosen
    else:
        found = next((f for f in files if f.path == path), None)  # type: ignore[assignment]
        if found is None:
            raise NotFound(f"Repository {repo} has no file {path}.")
    if not _FILE_NAME.match(found.name):
        raise InvalidRequest(f"{found.name!r} is not a safe .gguf file name.")
    if not re.fullmatch(r"[0-9a-f]{64}", found.sha256) or found.size <= 0:
        found = _from_headers(client, repo, found.path)
    return found


def _hash_file(path: Path) -> Any:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest


def pull(
    spec: str, models_dir: Path, progress: Progress | None = None, on_file: Callable[[RemoteFile], None] | None = None
) -> PullResult:
    """Download the GGUF `spec` (OWNER/NAME[/FILE]) into `models_dir`, verified; resumable.

    `on_file` hears which file was chosen before the transfer starts;
    `progress(done, total)` hears the bytes on disk as they grow.
    """
    repo, path = parse_spec(spec)
    with _client() as client:
        remote = resolve_file(client, repo, path)
        try:
            models_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the models folder {models_dir}: {exc.strerror}.") from None
        target = (models_dir / remote.name).resolve()
        if target.parent != models_dir.resolve():  # belt and braces: the name was checked already
            raise InvalidRequest(f"{remote.name!r} would be written outside {models_dir}.")
        if on_file is not None:
            on_file(remote)
        if target.exists():
            if target.stat().st_size == remote.size and _hash_file(target).hexdigest() == remote.sha256:
                return PullResult(target, remote.size, remote.sha256, "present")
            raise StoreError(f"{target} already exists and differs from {repo}/{remote.path}; move or delete it first.")
        part = models_dir / f".{remote.name}.part"
        return _download(client, remote, part, target, progress)


def _download(client: Any, remote: RemoteFile, part: Path, target: Path, progress: Progress | None) -> PullResult:
    import httpx

    have = part.stat().st_size if part.exists() else 0
    if have > remote.size:
        part.unlink()
        have = 0
    free = shutil.disk_usage(part.parent).free
    if remote.size - have > free:
        raise StoreError(
            f"{remote.name} needs {(remote.size - have) / 1e9:.2f} GB more but {part.parent} "
            f"has {free / 1e9:.2f} GB free."
        )
    digest = _hash_file(part) if have else hashlib.sha256()
    resumed = have > 0
    url = f"{endpoint()}/{remote.repo}/resolve/{REVISION}/{quote(remote.path)}"
    if have < remote.size:
        headers = (
            {"Range": f"bytes={have}-", "Accept-Encoding": "identity"} if have else {"Accept-Encoding": "identity"}
        )
        try:
            with client.stream("GET", url, headers=headers) as response:
                if response.status_code == 416 or response.status_code >= 400:
                    raise ProviderError(
                        f"Hugging Face answered HTTP {response.status_code} for {remote.repo}/{remote.path}."
                    )
                if have and response.status_code != 206:  # the server ignored the range: start over
                    have, digest, resumed = 0, hashlib.sha256(), False
                elif have and not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
                    raise ProviderError(f"Hugging Face resumed {remote.name} at the wrong offset.")
                with part.open("ab" if have else "wb") as handle:
                    for block in response.iter_bytes(CHUNK_BYTES):
                        if have + len(block) > remote.size:
                            break  # more bytes than the repository says: the check below fails it
                        handle.write(block)
                        digest.update(block)
                        have += len(block)
                        if progress is not None:
                            progress(have, remote.size)
                    handle.flush()
                    os.fsync(handle.fileno())
        except httpx.HTTPError as exc:
            raise ProviderUnreachable(
                f"The download of {remote.name} broke off at {have / 1e6:.0f} MB ({type(exc).__name__}); "
                "run the same command again to resume it."
            ) from None
    if have != remote.size or digest.hexdigest() != remote.sha256:
        part.unlink(missing_ok=True)
        raise ProviderError(
            f"The downloaded {remote.name} does not match the repository's size and sha256, so it was deleted; "
            "run the command again."
        )
    os.replace(part, target)
    return PullResult(target, remote.size, remote.sha256, "resumed" if resumed else "downloaded")
