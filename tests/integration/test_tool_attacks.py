"""Attacks on the built-in tools: path escapes, SSRF and redirect tricks, DNS
rebinding, argument injection into git and run_command. Each attack is its own
test and checks that nothing was read, written, requested or created."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from workbench.engine.errors import ToolError
from workbench.engine.tools.base import Tool, ToolContext
from workbench.engine.tools.builtin import files, git, http, python, shell
from workbench.engine.tools.netguard import check_url, fetch, is_public_address
from workbench.engine.tools.paths import NO_ROOTS_MESSAGE, confine

SECRET = "TOP-SECRET-CONTENT"


def tool(name: str) -> Tool:
    return {t.name: t for m in (files, shell, http, git, python) for t in m.tools()}[name]


# ====================================================================== paths


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "root"
    evil = tmp_path / "root-evil"
    root.mkdir()
    evil.mkdir()
    (evil / "x").write_text(SECRET)
    (tmp_path / "outside.txt").write_text(SECRET)
    (root / "inside.txt").write_text("fine")
    (root / "link-out").symlink_to(tmp_path / "outside.txt")
    (root / "dir-out").symlink_to(evil, target_is_directory=True)
    return {"tmp": tmp_path, "root": root, "evil": evil}


def _ctx(layout: dict[str, Path]) -> ToolContext:
    return ToolContext(roots=[layout["root"]])


def _escapes(layout: dict[str, Path]) -> dict[str, str]:
    return {
        "dotdot": "../outside.txt",
        "dotdot-deep": "a/../../outside.txt",
        "sibling-prefix-abs": str(layout["evil"] / "x"),
        "sibling-prefix-rel": "../root-evil/x",
        "symlink-file-out": "link-out",
        "symlink-dir-out": "dir-out/x",
        "absolute-elsewhere": "/etc/passwd",
    }


ESCAPE_KEYS = [
    "dotdot",
    "dotdot-deep",
    "sibling-prefix-abs",
    "sibling-prefix-rel",
    "symlink-file-out",
    "symlink-dir-out",
    "absolute-elsewhere",
]


@pytest.mark.parametrize("key", ESCAPE_KEYS)
def test_read_file_escape_refused(layout: dict[str, Path], key: str) -> None:
    path = _escapes(layout)[key]
    with pytest.raises(ToolError, match="outside the workspace roots") as info:
        tool("read_file").run({"path": path}, _ctx(layout))
    assert SECRET not in str(info.value)
    assert "root-evil" not in str(info.value) or "root-evil" in path  # no symlink target leaked


@pytest.mark.parametrize("key", ESCAPE_KEYS)
def test_write_file_escape_refused(layout: dict[str, Path], key: str) -> None:
    path = _escapes(layout)[key]
    before = {p: p.read_bytes() for p in layout["tmp"].rglob("*") if p.is_file() and not p.is_symlink()}
    with pytest.raises(ToolError, match="outside the workspace roots"):
        tool("write_file").run({"path": path, "content": "PWNED"}, _ctx(layout))
    after = {p: p.read_bytes() for p in layout["tmp"].rglob("*") if p.is_file() and not p.is_symlink()}
    assert after == before
    assert (layout["tmp"] / "outside.txt").read_text() == SECRET
    assert (layout["evil"] / "x").read_text() == SECRET


def test_write_new_file_outside_refused(layout: dict[str, Path]) -> None:
    with pytest.raises(ToolError, match="outside"):
        tool("write_file").run({"path": "../new-file.txt", "content": "x"}, _ctx(layout))
    with pytest.raises(ToolError, match="outside"):
        tool("write_file").run({"path": "../root-evil/sub/new.txt", "content": "x"}, _ctx(layout))
    assert not (layout["tmp"] / "new-file.txt").exists()
    assert not (layout["evil"] / "sub").exists()


def test_sibling_prefix_root_is_not_inside(layout: dict[str, Path]) -> None:
    # '/…/root-evil/x' starts with the string '/…/root' but is not inside it
    with pytest.raises(ToolError):
        confine(str(layout["evil"] / "x"), [layout["root"]], must_exist=True)
    assert confine("inside.txt", [layout["root"]], must_exist=True) == (layout["root"] / "inside.txt").resolve()


@pytest.mark.parametrize("name", ["read_file", "write_file", "list_dir", "search_files"])
def test_nul_byte_in_path_refused(layout: dict[str, Path], name: str) -> None:
    args: dict[str, Any] = {"path": "inside.txt\x00../../outside.txt"}
    if name == "write_file":
        args["content"] = "PWNED"
    if name == "search_files":
        args["query"] = "fine"
    with pytest.raises(ToolError, match="NUL"):
        tool(name).run(args, _ctx(layout))
    assert (layout["root"] / "inside.txt").read_text() == "fine"
    assert (layout["tmp"] / "outside.txt").read_text() == SECRET


@pytest.mark.parametrize("path", ["", "   "])
def test_empty_path_refused(layout: dict[str, Path], path: str) -> None:
    with pytest.raises(ToolError, match="empty"):
        confine(path, [layout["root"]], must_exist=False)


def test_no_roots_refused(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text(SECRET)
    with pytest.raises(ToolError, match="workspace_roots") as info:
        tool("read_file").run({"path": str(target)}, ToolContext())
    assert str(info.value) == NO_ROOTS_MESSAGE
    with pytest.raises(ToolError, match="workspace_roots"):
        tool("write_file").run({"path": str(tmp_path / "new.txt"), "content": "x"}, ToolContext())
    assert not (tmp_path / "new.txt").exists()


def test_list_dir_escape_refused(layout: dict[str, Path]) -> None:
    for path in ("..", "dir-out", str(layout["evil"])):
        with pytest.raises(ToolError, match="outside"):
            tool("list_dir").run({"path": path}, _ctx(layout))


def test_search_does_not_follow_symlinks_out_of_roots(layout: dict[str, Path]) -> None:
    (layout["root"] / "sub").mkdir()
    (layout["root"] / "sub" / "deep-link").symlink_to(layout["tmp"] / "outside.txt")
    out = tool("search_files").run({"query": "SECRET"}, _ctx(layout))
    assert out["matches"] == []
    with pytest.raises(ToolError, match="outside"):
        tool("search_files").run({"query": "SECRET", "path": "dir-out"}, _ctx(layout))


def test_read_file_through_symlink_inside_root_is_fine(layout: dict[str, Path]) -> None:
    (layout["root"] / "link-in").symlink_to(layout["root"] / "inside.txt")
    assert tool("read_file").run({"path": "link-in"}, _ctx(layout)) == "fine"


# ======================================================================== network


class _Recorder(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        server = self.server
        server.requests.append((self.path, self.headers.get("Host")))  # type: ignore[attr-defined]
        target = server.redirect_to  # type: ignore[attr-defined]
        if self.path.startswith("/redirect") and target:
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = server.body  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve(host: str, port: int = 0, body: bytes = b"ok", redirect_to: str | None = None) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), _Recorder)
    server.requests = []  # type: ignore[attr-defined]
    server.body = body  # type: ignore[attr-defined]
    server.redirect_to = redirect_to  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def _stop(*servers: ThreadingHTTPServer) -> None:
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def local() -> Iterator[ThreadingHTTPServer]:
    server = _serve("127.0.0.1", body=SECRET.encode())
    yield server
    _stop(server)


def _blocked_urls(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/",
        f"http://localhost:{port}/",
        f"http://0.0.0.0:{port}/",
        f"http://[::]:{port}/",
        f"http://[::1]:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://[::ffff:7f00:1]:{port}/",
        "http://169.254.169.254/latest/meta-data",
        f"http://2130706433:{port}/",
        f"http://0177.0.0.1:{port}/",
        f"http://0x7f.0.0.1:{port}/",
        f"http://127.1:{port}/",
        f"http://user@127.0.0.1:{port}/",
        f"http://evil.example@127.0.0.1:{port}/",
        f"http://user:pass@example.com:{port}/",
        "http://100.64.0.1/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://[fd00::1]/",
        "http://[fe80::1]/",
        "http://224.0.0.1/",
        "file:///etc/passwd",
        "ftp://x/",
        "gopher://127.0.0.1:70/",
        f"http://127.0.0.1:{port}\\@example.com/",
        "",
    ]


BLOCKED_IDS = [
    "loopback",
    "localhost",
    "unspecified-v4",
    "unspecified-v6",
    "loopback-v6",
    "mapped-v4-dotted",
    "mapped-v4-hex",
    "metadata",
    "decimal",
    "octal",
    "hex",
    "short-127.1",
    "userinfo",
    "userinfo-evil-host",
    "userinfo-password",
    "cgnat",
    "rfc1918-10",
    "rfc1918-192",
    "ula-fd00",
    "link-local-v6",
    "multicast",
    "file-scheme",
    "ftp-scheme",
    "gopher-scheme",
    "backslash",
    "empty",
]


@pytest.mark.parametrize("index", range(len(BLOCKED_IDS)), ids=BLOCKED_IDS)
def test_blocked_url_refused_without_request(local: ThreadingHTTPServer, index: int) -> None:
    url = _blocked_urls(local.server_address[1])[index]
    with pytest.raises(ToolError):
        check_url(url, False)
    with pytest.raises(ToolError) as info:
        fetch(url, allow_private=False, timeout_s=3.0, max_bytes=1000)
    with pytest.raises(ToolError):
        tool("http_fetch").run({"url": url}, ToolContext(allow_private_network=False, timeout_s=3.0))
    assert SECRET not in str(info.value)
    assert local.requests == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "0.0.0.0",
        "::",
        "::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "fd00::1",
        "fe80::1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::1",
        "::127.0.0.1",
        "255.255.255.255",
        "240.0.0.1",
        "198.18.0.1",
        "192.0.0.8",
    ],
)
def test_non_public_addresses_classified(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:1.1.1.1"])
def test_public_addresses_classified(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is True


def test_redirect_to_loopback_refused() -> None:
    """Hop one is an explicitly allowed address (127.0.0.2); its redirect to 127.0.0.1 is refused."""
    inner = _serve("127.0.0.1", body=SECRET.encode())
    inner_url = f"http://127.0.0.1:{inner.server_address[1]}/secret"
    outer = _serve("127.0.0.2", redirect_to=inner_url)
    try:
        start = f"http://127.0.0.2:{outer.server_address[1]}/redirect"
        with pytest.raises(ToolError, match="private") as info:
            fetch(start, allow_private=False, timeout_s=3.0, max_bytes=1000, allow_addresses={"127.0.0.2"})
        assert SECRET not in str(info.value)
        assert [p for p, _h in outer.requests] == ["/redirect"]  # type: ignore[attr-defined]
        assert inner.requests == []  # type: ignore[attr-defined]

        # the same redirect is followed when the target is allowed too: the check above is real
        ok = fetch(
            start, allow_private=False, timeout_s=3.0, max_bytes=1000, allow_addresses={"127.0.0.2", "127.0.0.1"}
        )
        assert ok.text == SECRET and ok.redirects == [inner_url]
        assert [p for p, _h in inner.requests] == ["/secret"]  # type: ignore[attr-defined]
    finally:
        _stop(inner, outer)


@pytest.mark.parametrize(
    "form",
    ["http://2130706433:{port}/", "http://127.1:{port}/", "http://[::ffff:127.0.0.1]:{port}/", "file:///etc/passwd"],
)
def test_redirect_to_obfuscated_target_refused(form: str) -> None:
    inner = _serve("127.0.0.1", body=SECRET.encode())
    outer = _serve("127.0.0.2", redirect_to=form.format(port=inner.server_address[1]))
    try:
        with pytest.raises(ToolError):
            fetch(
                f"http://127.0.0.2:{outer.server_address[1]}/redirect",
                allow_private=False,
                timeout_s=3.0,
                max_bytes=1000,
                allow_addresses={"127.0.0.2"},
            )
        assert len(outer.requests) == 1  # type: ignore[attr-defined]
        assert inner.requests == []  # type: ignore[attr-defined]
    finally:
        _stop(inner, outer)


def test_redirect_loop_stops() -> None:
    server = _serve("127.0.0.2")
    server.redirect_to = f"http://127.0.0.2:{server.server_address[1]}/redirect"  # type: ignore[attr-defined]
    try:
        with pytest.raises(ToolError, match="redirected more than 3 times"):
            fetch(
                server.redirect_to,
                allow_private=False,
                timeout_s=3.0,
                max_bytes=100,  # type: ignore[attr-defined]
                max_redirects=3,
                allow_addresses={"127.0.0.2"},
            )
        assert len(server.requests) == 4  # type: ignore[attr-defined]
    finally:
        _stop(server)


def _fake_dns(monkeypatch: pytest.MonkeyPatch, name: str, answers: list[str]) -> list[int]:
    """Make `name` resolve to answers[0], then answers[1], ...: a rebinding DNS server."""
    real = socket.getaddrinfo
    calls = [0]

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == name:
            answer = answers[min(calls[0], len(answers) - 1)]
            calls[0] += 1
            return real(answer, port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return calls


def test_dns_rebinding_cannot_switch_the_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """The name resolves to an allowed address at check time and to 127.0.0.1 afterwards;
    the request must still go to the address that was checked."""
    allowed = _serve("127.0.0.2", body=b"checked target")
    port = allowed.server_address[1]
    try:
        rebound = _serve("127.0.0.1", port=port, body=SECRET.encode())
    except OSError:
        _stop(allowed)
        pytest.fail("could not bind 127.0.0.1 on the same port as 127.0.0.2")
    try:
        calls = _fake_dns(monkeypatch, "rebind.test", ["127.0.0.2", "127.0.0.1"])
        result = fetch(
            f"http://rebind.test:{port}/page",
            allow_private=False,
            timeout_s=3.0,
            max_bytes=1000,
            allow_addresses={"127.0.0.2"},
        )
        assert result.text == "checked target"
        assert calls[0] == 1  # resolved once, at check time
        assert allowed.requests == [("/page", f"rebind.test:{port}")]  # type: ignore[attr-defined]
        assert rebound.requests == []  # type: ignore[attr-defined]
    finally:
        _stop(allowed, rebound)


def test_name_resolving_to_private_address_refused(monkeypatch: pytest.MonkeyPatch, local: ThreadingHTTPServer) -> None:
    _fake_dns(monkeypatch, "innocent.example", ["127.0.0.1"])
    with pytest.raises(ToolError, match="private"):
        fetch(f"http://innocent.example:{local.server_address[1]}/", allow_private=False, timeout_s=3.0, max_bytes=100)
    assert local.requests == []  # type: ignore[attr-defined]


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_https_is_pinned_with_original_sni_and_certificate_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _self_signed(tmp_path, "pinned.test")
    server = ThreadingHTTPServer(("127.0.0.2", 0), _Recorder)
    server.requests, server.body, server.redirect_to = [], b"over tls", None  # type: ignore[attr-defined]
    seen_sni: list[str | None] = []
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    server_ctx.sni_callback = lambda sock, name, ctx: seen_sni.append(name)  # type: ignore[assignment]
    server.socket = server_ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    port = server.server_address[1]
    try:
        _fake_dns(monkeypatch, "pinned.test", ["127.0.0.2", "127.0.0.1"])
        trust = ssl.create_default_context(cafile=str(cert))
        result = fetch(
            f"https://pinned.test:{port}/tls",
            allow_private=False,
            timeout_s=5.0,
            max_bytes=1000,
            allow_addresses={"127.0.0.2"},
            verify=trust,
        )
        assert result.status == 200 and result.text == "over tls"
        assert seen_sni == ["pinned.test"]
        assert server.requests == [("/tls", f"pinned.test:{port}")]  # type: ignore[attr-defined]
        # the certificate is checked against the original name, not the IP
        _fake_dns(monkeypatch, "other.test", ["127.0.0.2"])
        with pytest.raises(ToolError, match="certificate|connect"):
            fetch(
                f"https://other.test:{port}/tls",
                allow_private=False,
                timeout_s=5.0,
                max_bytes=1000,
                allow_addresses={"127.0.0.2"},
                verify=trust,
            )
        assert len(server.requests) == 1  # type: ignore[attr-defined]
    finally:
        _stop(server)


# ============================================================================ git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    for args in (["init", "-q", "-b", "main"], ["config", "user.email", "t@example.com"], ["config", "user.name", "T"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)
    (root / "a.txt").write_text("a\n")
    subprocess.run(["git", "-C", str(root), "add", "a.txt"], check=True, capture_output=True)
    subprocess.run(["git", "-C", str(root), "commit", "-q", "-m", "init"], check=True, capture_output=True)
    (root / "a.txt").write_text("a\nb\n")
    return root


def _created(tmp_path: Path, repo: Path) -> list[Path]:
    """Files an injection could have created."""
    candidates = [tmp_path / "x", tmp_path / "X", repo / "X", repo / "x", Path.cwd() / "X"]
    return [p for p in candidates if p.exists()]


def _head(repo: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize("tool_name", ["git_log", "git_diff"])
def test_git_ref_option_injection_refused(repo: Path, tmp_path: Path, tool_name: str) -> None:
    ctx = ToolContext(roots=[repo])
    with pytest.raises(ToolError, match="may not start with '-'"):
        tool(tool_name).run({"ref": f"--output={tmp_path / 'x'}"}, ctx)
    with pytest.raises(ToolError, match="may not start with '-'"):
        tool(tool_name).run({"ref": " --output=/dev/null"}, ctx)
    assert _created(tmp_path, repo) == []


@pytest.mark.parametrize("value", ["; touch X", "$(touch X)", "`touch X`", "a.txt && touch X", "HEAD | touch X"])
@pytest.mark.parametrize("tool_name", ["git_log", "git_diff"])
def test_git_ref_shell_syntax_is_data(repo: Path, tmp_path: Path, tool_name: str, value: str) -> None:
    with pytest.raises(ToolError, match="failed"):
        tool(tool_name).run({"ref": value}, ToolContext(roots=[repo]))
    assert _created(tmp_path, repo) == []


@pytest.mark.parametrize("value", ["; touch X", "$(touch X)", "`touch X`", "*", ":(glob)**"])
def test_git_diff_path_shell_syntax_and_magic_are_literal(repo: Path, tmp_path: Path, value: str) -> None:
    out = tool("git_diff").run({"path": value}, ToolContext(roots=[repo]))
    assert out == "No differences."  # a literal (non-existent) path: pathspec magic is off
    assert _created(tmp_path, repo) == []


@pytest.mark.parametrize("tool_name", ["git_diff", "git_add"])
def test_git_path_option_injection_refused(repo: Path, tmp_path: Path, tool_name: str) -> None:
    args: dict[str, Any] = (
        {"path": f"--output={tmp_path / 'x'}"}
        if tool_name == "git_diff"
        else {"paths": ["a.txt", f"--output={tmp_path / 'x'}"]}
    )
    with pytest.raises(ToolError, match="may not start with '-'"):
        tool(tool_name).run(args, ToolContext(roots=[repo]))
    assert _created(tmp_path, repo) == []
    staged = subprocess.run(
        ["git", "-C", str(repo), "diff", "--cached", "--name-only"], capture_output=True, text=True
    ).stdout
    assert staged == ""


def test_git_path_outside_repo_and_git_dir_refused(repo: Path, tmp_path: Path) -> None:
    ctx = ToolContext(roots=[repo])
    with pytest.raises(ToolError, match="outside"):
        tool("git_add").run({"paths": ["../outside"]}, ctx)
    with pytest.raises(ToolError, match=r"\.git"):
        tool("git_add").run({"paths": [".git/config"]}, ctx)
    with pytest.raises(ToolError, match="outside"):
        tool("git_status").run({"repo": str(tmp_path)}, ctx)
    with pytest.raises(ToolError, match="may not start"):
        tool("git_status").run({"repo": "--git-dir=/tmp"}, ctx)


@pytest.mark.parametrize("message", ["--output=X", "; touch X", "$(touch X)", "`touch X`", "-m evil --amend"])
def test_git_commit_message_is_literal_data(repo: Path, tmp_path: Path, message: str) -> None:
    ctx = ToolContext(roots=[repo])
    before = _head(repo)
    tool("git_add").run({"paths": ["a.txt"]}, ctx)
    tool("git_commit").run({"message": message}, ctx)
    subject = subprocess.run(
        ["git", "-C", str(repo), "log", "-1", "--format=%s"], capture_output=True, text=True
    ).stdout
    parent = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD~1"], capture_output=True, text=True).stdout
    assert subject.strip() == message.strip()
    assert parent == before  # a new commit, not an amend
    assert _created(tmp_path, repo) == []


def test_git_hooks_from_repository_do_not_run(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "hook-ran"
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    subprocess.run(["git", "-C", str(repo), "config", "core.fsmonitor", f"touch {marker}; false"], check=True)
    ctx = ToolContext(roots=[repo])
    tool("git_status").run({}, ctx)
    tool("git_add").run({"paths": ["a.txt"]}, ctx)
    tool("git_commit").run({"message": "no hooks"}, ctx)
    assert not marker.exists()


def test_root_inside_bigger_repository_refused(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    root = outer / "sub"
    root.mkdir(parents=True)
    subprocess.run(["git", "-C", str(outer), "init", "-q"], check=True)
    (outer / "private.txt").write_text(SECRET)
    with pytest.raises(ToolError, match="top folder is outside") as info:
        tool("git_status").run({}, ToolContext(roots=[root]))
    assert "private.txt" not in str(info.value)


def test_written_fake_bare_repository_is_not_used(tmp_path: Path) -> None:
    """write_file can create files that look like a bare repository whose config runs a
    filter command; the git tools must refuse it instead of running that command."""
    root = tmp_path / "root"
    root.mkdir()
    marker = tmp_path / "filter-ran"
    ctx = ToolContext(roots=[root])
    write = tool("write_file")
    write.run({"path": "fake/HEAD", "content": "ref: refs/heads/main\n"}, ctx)
    write.run({"path": "fake/objects/keep", "content": ""}, ctx)
    write.run({"path": "fake/refs/keep", "content": ""}, ctx)
    write.run(
        {
            "path": "fake/config",
            "content": f'[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tworktree = ..\n[filter "x"]\n\tclean = touch {marker}\n',
        },
        ctx,
    )
    write.run({"path": ".gitattributes", "content": "* filter=x\n"}, ctx)
    write.run({"path": "fake/a.txt", "content": "hi\n"}, ctx)
    for name, args in (
        ("git_status", {"repo": "fake"}),
        ("git_add", {"repo": "fake", "paths": ["a.txt"]}),
        ("git_diff", {"repo": "fake"}),
    ):
        with pytest.raises(ToolError):
            tool(name).run(args, ctx)
    assert not marker.exists()


@pytest.mark.parametrize("path", [".git/config", ".GIT/config", "sub/.git/hooks/pre-commit", ".git"])
def test_write_into_git_internals_refused(repo: Path, path: str) -> None:
    before = (repo / ".git" / "config").read_text()
    with pytest.raises(ToolError, match=r"\.git"):
        tool("write_file").run({"path": path, "content": "[core]\n\tfsmonitor = touch X\n"}, ToolContext(roots=[repo]))
    assert (repo / ".git" / "config").read_text() == before
    assert not (repo / ".GIT").exists() and not (repo / "sub").exists()


# ==================================================================== run_command


def test_command_string_as_argv0_does_not_run(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(ToolError, match="not found"):
        tool("run_command").run({"argv": ["echo hi; touch X"]}, ToolContext(roots=[root]))
    with pytest.raises(ToolError, match="not found"):
        tool("run_command").run({"argv": ["$(touch X)"]}, ToolContext(roots=[root]))
    assert not (root / "X").exists() and not (Path.cwd() / "X").exists()


def test_shell_metacharacters_in_arguments_are_literal(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    out = tool("run_command").run(
        {"argv": ["echo", "hi; touch X", "$(touch X)", "`touch X`"]}, ToolContext(roots=[root])
    )
    assert out["stdout"] == "hi; touch X $(touch X) `touch X`\n"
    assert not (root / "X").exists()


def test_explicit_shell_argv_is_allowed_because_it_is_explicit(tmp_path: Path) -> None:
    """`["sh", "-c", ...]` runs a shell only because the argv asks for one (exec permission)."""
    root = tmp_path / "root"
    root.mkdir()
    out = tool("run_command").run({"argv": ["sh", "-c", "echo made > made.txt; echo done"]}, ToolContext(roots=[root]))
    assert out["stdout"] == "done\n"
    assert (root / "made.txt").read_text() == "made\n"


@pytest.mark.parametrize("argv", [[""], ["  "], ["echo", "a\x00b"], ["ec\x00ho"]])
def test_run_command_refuses_empty_and_nul(tmp_path: Path, argv: list[str]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(ToolError, match="empty|NUL"):
        tool("run_command").run({"argv": argv}, ToolContext(roots=[root]))


def test_run_command_cwd_confined(layout: dict[str, Path]) -> None:
    for cwd in ("..", str(layout["evil"]), "dir-out"):
        with pytest.raises(ToolError, match="outside"):
            tool("run_command").run({"argv": ["ls"], "cwd": cwd}, _ctx(layout))
    with pytest.raises(ToolError, match="workspace root"):
        tool("run_command").run({"argv": ["ls"]}, ToolContext())


def test_run_python_is_not_in_process(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    marker = "WORKBENCH_INPROCESS_MARKER"
    out = tool("run_python").run(
        {"code": f"import os; os.environ['{marker}'] = '1'; print(os.getpid())"}, ToolContext(roots=[root])
    )
    assert int(out["stdout"]) != os.getpid()
    assert marker not in os.environ
