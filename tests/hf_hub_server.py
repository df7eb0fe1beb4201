"""A Hugging Face Hub stand-in on 127.0.0.1 speaking the wire format `models pull` uses.

* `GET /api/models/{owner}/{name}/tree/main[/{folder}]`: JSON entries
  `{"type", "oid", "size", "path", "lfs": {"oid": sha256, "size", "pointerSize"}}`.
* `HEAD|GET /{owner}/{name}/resolve/main/{file}`: 302 to `/cdn/{token}` with
  `X-Linked-Size`, `X-Linked-Etag` (the sha256, quoted) and `X-Repo-Commit`,
  as the Hub answers for LFS files.
* `GET /cdn/{token}`: the bytes; `Range: bytes=N-` answers 206 with
  `Content-Range: bytes N-END/TOTAL`.

Per file, the test can make the CDN serve corrupt bytes (`corrupt`), or cut
the connection after `cut_after` bytes once (a broken download). Every
request is recorded in `requests` as (method, path, Range header).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote


@dataclass
class HubFile:
    repo: str
    path: str
    data: bytes
    corrupt: bool = False
    cut_after: int | None = None  # close the connection after this many bytes, once

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class FakeHub:
    def __init__(self) -> None:
        self.files: dict[tuple[str, str], HubFile] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, repo: str, path: str, data: bytes, **options: Any) -> HubFile:
        file = HubFile(repo, path, data, **options)
        self.files[(repo, path)] = file
        return file

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(head=True)

            def do_GET(self) -> None:
                self._answer(head=False)

            def _answer(self, head: bool) -> None:
                path = unquote(self.path.split("?", 1)[0])
                hub.requests.append((self.command, path, self.headers.get("Range")))
                parts = path.strip("/").split("/")
                if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4:6] == ["tree", "main"]:
                    return self._tree("/".join(parts[2:4]), "/".join(parts[6:]))
                if len(parts) >= 5 and parts[2:4] == ["resolve", "main"]:
                    file = hub.files.get(("/".join(parts[:2]), "/".join(parts[4:])))
                    if file is None:
                        return self._send(404, b'{"error":"Entry not found"}', "application/json")
                    return self._send(
                        302,
                        b"",
                        "text/plain",
                        {
                            "Location": f"/cdn/{len(hub.requests)}/{'/'.join(parts[:2])}/{'/'.join(parts[4:])}",
                            "X-Linked-Size": str(len(file.data)),
                            "X-Linked-Etag": f'"{file.sha256}"',
                            "X-Repo-Commit": "0" * 40,
                        },
                        head=head,
                    )
                if parts[0] == "cdn" and len(parts) >= 5:
                    file = hub.files.get(("/".join(parts[2:4]), "/".join(parts[4:])))
                    if file is not None:
                        return self._bytes(file, head)
                self._send(404, b'{"error":"Not found"}', "application/json")

            def _tree(self, repo: str, folder: str) -> None:
                entries = []
                prefix = f"{folder}/" if folder else ""
                for (file_repo, path), file in hub.files.items():
                    if file_repo != repo or not path.startswith(prefix) or "/" in path[len(prefix) :]:
                        continue
                    entries.append(
                        {
                            "type": "file",
                            "oid": hashlib.sha1(file.data).hexdigest(),
                            "size": len(file.data),
                            "path": path,
                            "lfs": {"oid": file.sha256, "size": len(file.data), "pointerSize": 135},
                        }
                    )
                if not entries and not any(r == repo for r, _ in hub.files):
                    return self._send(404, b'{"error":"Repository not found"}', "application/json")
                self._send(200, json.dumps(entries).encode(), "application/json")

            def _bytes(self, file: HubFile, head: bool) -> None:
                data = bytearray(file.data)
                if file.corrupt:
                    data[len(data) // 2] ^= 0xFF
                start = 0
                ranged = self.headers.get("Range", "")
                if ranged.startswith("bytes=") and ranged.endswith("-"):
                    start = int(ranged[6:-1])
                if start >= len(data) and ranged:
                    return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{len(data)}"})
                body = bytes(data[start:])
                headers = {"Accept-Ranges": "bytes", "ETag": f'"{file.sha256}"'}
                if ranged:
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                cut = file.cut_after
                if cut is not None and not head:
                    file.cut_after = None  # once
                    self.send_response(206 if ranged else 200)
                    for name, value in {
                        **headers,
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(len(body)),
                    }.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self._send(206 if ranged else 200, body, "application/octet-stream", headers, head=head)

            def _send(
                self,
                status: int,
                body: bytes,
                content_type: str,
                headers: dict[str, str] | None = None,
                head: bool = False,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

        return Handler
