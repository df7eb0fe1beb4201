"""Guarded HTTP fetching: no private targets, every redirect re-checked, no DNS rebinding.

`check_url` accepts only `http`/`https` URLs without user info, resolves the
host with `socket.getaddrinfo` and refuses the URL if *any* resolved address is
not a public unicast address (loopback, private, link-local, CGNAT, multicast,
reserved, unspecified, IPv4-mapped/NAT64/6to4/Teredo forms of those ...),
unless private targets are allowed. Because the check runs on the *resolved*
addresses, odd spellings such as `2130706433`, `0x7f.1` or `127.1` are caught
the same way as `127.0.0.1`.

`fetch` then connects to one of the addresses it checked, not to a name it
would resolve again: the request goes to `http(s)://<ip>:<port>/...` with the
original `Host` header, and for https the original name as TLS SNI and for
certificate verification (httpcore's `sni_hostname` request extension). So a
DNS answer that changes between the check and the connect cannot redirect the
request. Redirects are not followed by httpx; each hop is checked again.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Collection
from dataclasses import dataclass, field

import httpx

from workbench.engine.errors import ToolError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = ("http", "https")
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
USER_AGENT = "workbench-http-fetch/0.1"

# Ranges refused even where Python's `is_global` might disagree across versions.
_EXTRA_BLOCKED = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "100.64.0.0/10",  # carrier-grade NAT
        "169.254.0.0/16",  # link-local, cloud metadata (169.254.169.254)
        "192.0.0.0/24",  # IETF protocol assignments
        "198.18.0.0/15",  # benchmarking
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "fc00::/7",  # unique local (fd00::/8 included)
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast
        "100::/64",  # discard-only
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass
class FetchResult:
    url: str
    status: int
    content_type: str
    text: str
    truncated: bool
    redirects: list[str] = field(default_factory=list)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    # deprecated IPv4-compatible form ::a.b.c.d
    if int(ip) >> 32 == 0 and int(ip) > 1:
        return ipaddress.IPv4Address(int(ip))
    return None


def is_public_address(ip: IPAddress) -> bool:
    """True for a globally routable unicast address, false for anything local or special."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False
        if ip.ipv4_mapped is not None:
            # ::ffff:a.b.c.d reaches exactly a.b.c.d: judge that address
            return is_public_address(ip.ipv4_mapped)
        inner = _embedded_ipv4(ip)
        if inner is not None and not is_public_address(inner):
            return False
    if (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    ):
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return False
    return not any(ip.version == net.version and ip in net for net in _EXTRA_BLOCKED)


def _parse(url: str) -> httpx.URL:
    if not isinstance(url, str) or not url.strip():
        raise ToolError("The URL is empty.")
    if any(ch in url for ch in "\x00\r\n\t") or "\\" in url:
        raise ToolError("The URL contains characters that are not allowed.")
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, ValueError, TypeError):
        raise ToolError("The URL is not valid.") from None
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise ToolError("Only http and https URLs can be fetched.")
    if parsed.userinfo:
        raise ToolError("URLs with a user name or password (user@host) are refused.")
    if not parsed.host:
        raise ToolError("The URL has no host.")
    return parsed


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise ToolError(f"The host {host[:100]!r} could not be resolved.") from None
    addresses: list[IPAddress] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        text = str(sockaddr[0]).split("%", 1)[0]
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue
        if isinstance(ip, ipaddress.IPv6Address) and family == socket.AF_INET6 and sockaddr[3]:
            # keep the scope: a scoped address is link-local by definition
            ip = ipaddress.IPv6Address(f"{text}%{sockaddr[3]}")
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise ToolError(f"The host {host[:100]!r} has no usable address.")
    return addresses


def _allowed_set(allow_addresses: Collection[str] | None) -> set[IPAddress]:
    return {ipaddress.ip_address(a) for a in (allow_addresses or ())}


def _check(
    url: str, allow_private: bool, allow_addresses: Collection[str] | None
) -> tuple[httpx.URL, str, list[IPAddress]]:
    parsed = _parse(url)
    host = parsed.raw_host.decode("ascii")  # IDNA-encoded, exactly what is connected to
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = _resolve(host, port)
    if not allow_private:
        allowed = _allowed_set(allow_addresses)
        for ip in addresses:
            if ip in allowed:
                continue
            if not is_public_address(ip):
                raise ToolError("The URL points to a private, loopback or link-local address, which is blocked.")
    return parsed, host, addresses


def check_url(
    url: str, allow_private: bool, *, allow_addresses: Collection[str] | None = None
) -> tuple[str, list[IPAddress]]:
    """Validate `url` and return its host and the addresses it resolves to.

    `allow_addresses` lists IP addresses explicitly trusted even though they are
    private (for a known local service); everything else private is refused
    unless `allow_private`.
    """
    _parsed, host, addresses = _check(url, allow_private, allow_addresses)
    return host, addresses


def _pinned_request(client: httpx.Client, parsed: httpx.URL, ip: IPAddress, timeout_s: float) -> httpx.Response:
    """Send a GET for `parsed` to `ip`, keeping the original Host header and TLS name."""
    ip_text = str(ip).split("%", 1)[0] if isinstance(ip, ipaddress.IPv6Address) else str(ip)
    target = parsed.copy_with(host=ip_text)
    headers = {
        "Host": parsed.netloc.decode("ascii"),
        "User-Agent": USER_AGENT,
        "Accept": "text/html,application/json,text/plain;q=0.9,*/*;q=0.5",
        "Accept-Encoding": "identity",
    }
    extensions: dict[str, object] = {}
    if parsed.scheme == "https":
        extensions["sni_hostname"] = parsed.raw_host.decode("ascii")
    request = client.build_request("GET", target, headers=headers, extensions=extensions, timeout=timeout_s)
    return client.send(request, stream=True, follow_redirects=False)


def _charset(response: httpx.Response) -> str:
    name = response.charset_encoding or "utf-8"
    try:
        "".encode(name)
    except LookupError:
        return "utf-8"
    return name


def fetch(
    url: str,
    *,
    allow_private: bool,
    timeout_s: float,
    max_bytes: int,
    max_redirects: int = 5,
    allow_addresses: Collection[str] | None = None,
    verify: ssl.SSLContext | bool = True,
) -> FetchResult:
    """GET `url`, checking it and every redirect hop, and read at most `max_bytes` of body.

    `timeout_s` bounds the whole fetch, redirects and body included. Raises
    `ToolError` when a hop is refused, on too many redirects, and on network
    errors.
    """
    if max_bytes < 1:
        raise ToolError("The size limit must be at least one byte.")
    deadline = time.monotonic() + max(timeout_s, 0.1)
    redirects: list[str] = []
    current = url
    with httpx.Client(
        trust_env=False,  # no proxies from the environment: connect where we checked
        follow_redirects=False,
        verify=verify,
        timeout=timeout_s,
    ) as client:
        for _hop in range(max_redirects + 1):
            parsed, _host, addresses = _check(current, allow_private, allow_addresses)
            response = _connect_any(client, parsed, addresses, deadline)
            try:
                location = response.headers.get("location")
                if response.status_code in REDIRECT_STATUSES and location:
                    try:
                        nxt = parsed.join(location)
                    except (httpx.InvalidURL, ValueError):
                        raise ToolError("The server redirected to an invalid URL.") from None
                    current = str(nxt)
                    redirects.append(current)
                    continue
                body, truncated = _read_body(response, max_bytes, deadline)
                return FetchResult(
                    url=str(parsed),
                    status=response.status_code,
                    content_type=response.headers.get("content-type", ""),
                    text=body.decode(_charset(response), errors="replace"),
                    truncated=truncated,
                    redirects=redirects,
                )
            finally:
                response.close()
    raise ToolError(f"The URL redirected more than {max_redirects} times.")


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise ToolError("The fetch took longer than its time limit.")
    return left


def _connect_any(
    client: httpx.Client, parsed: httpx.URL, addresses: list[IPAddress], deadline: float
) -> httpx.Response:
    last: Exception | None = None
    for ip in addresses:
        try:
            return _pinned_request(client, parsed, ip, _remaining(deadline))
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            last = exc
            continue
        except httpx.TimeoutException:
            raise ToolError("The server did not answer in time.") from None
        except httpx.HTTPError:
            raise ToolError("The request failed before the server answered.") from None
    if isinstance(last, httpx.ConnectError) and "CERTIFICATE" in str(last).upper():
        raise ToolError("The server's TLS certificate could not be verified.")
    raise ToolError("Could not connect to the server.")


def _read_body(response: httpx.Response, max_bytes: int, deadline: float) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    truncated = False
    try:
        for chunk in response.iter_bytes():
            if size + len(chunk) > max_bytes:
                chunks.append(chunk[: max_bytes - size])
                size = max_bytes
                truncated = True
                break
            chunks.append(chunk)
            size += len(chunk)
            if time.monotonic() > deadline:
                truncated = True
                break
    except httpx.TimeoutException:
        raise ToolError("The server stopped sending before the body was complete.") from None
    except httpx.HTTPError:
        raise ToolError("The connection failed while reading the body.") from None
    return b"".join(chunks), truncated
