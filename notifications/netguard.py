"""Calling URLs that staff typed, without letting them reach the inside of our network (SSRF guard).

- Only ``https``; plain ``http`` only to hosts listed in ``WEBHOOKS_ALLOW_HTTP_HOSTS`` (development).
- No user:password in the URL, no redirects (http.client never follows them; a 3xx is a failure).
- The host is resolved once and every address must be public: no private, loopback, link-local,
  shared (CGNAT), multicast, reserved or unspecified address, IPv4-mapped IPv6 included, unless
  ``WEBHOOKS_ALLOW_PRIVATE_ADDRESSES`` is on (development and tests only).
- The connection goes to the address that was checked, not to a second DNS answer, so a DNS rebinding
  trick cannot swap in an internal address between the check and the request. TLS still verifies the
  certificate against the host name.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from notifications import conf

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
RESPONSE_EXCERPT = 500


class UnsafeURL(ValueError):
    """The URL may not be called; the message says why, in words for staff."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


def is_public_address(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def _resolve(host: str, port: int) -> list[str]:
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return [str(literal)]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURL(f"The host {host} could not be resolved ({exc}).") from exc
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        if sockaddr[0] not in addresses:
            addresses.append(str(sockaddr[0]))
    if not addresses:
        raise UnsafeURL(f"The host {host} has no address.")
    return addresses


def check_url(url: str, *, resolve: bool = True) -> Target:
    """Everything that makes ``url`` unsafe raises UnsafeURL; otherwise the vetted target."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeURL("The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeURL("Credentials in the URL are not allowed; use the signing secret instead.")
    if scheme == "http":
        if host not in conf.webhooks_allow_http_hosts():
            raise UnsafeURL(
                f"Plain http is only allowed for hosts in WEBHOOKS_ALLOW_HTTP_HOSTS; use https for {host}."
            )
    elif scheme != "https":
        raise UnsafeURL(f"Only https URLs can receive webhooks, not {scheme or 'no scheme'}.")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeURL(f"The port is not valid ({exc}).") from exc
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    addresses: list[str] = _resolve(host, port) if resolve else []
    if not conf.webhooks_allow_private_addresses():
        for address in addresses:
            if not is_public_address(ipaddress.ip_address(address)):
                raise UnsafeURL(
                    f"{host} resolves to {address}, a private, loopback, link-local or reserved address."
                )
    return Target(scheme=scheme, host=host, port=port, path=path, addresses=tuple(addresses))


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(
        self, host: str, port: int, *, address: str, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


@dataclass(frozen=True)
class Response:
    status: int | None
    excerpt: str
    error: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(url: str, *, body: bytes, headers: dict[str, str], timeout: float | None = None) -> Response:
    """POST ``body`` to ``url`` through the guard. Never raises for network problems: they come back as
    ``Response.error`` (and ``UnsafeURL`` as an error too), so the caller logs one attempt either way."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target = check_url(url)
    except UnsafeURL as exc:
        return Response(status=None, excerpt="", error=f"Refused by the SSRF guard: {exc}", duration_ms=0)
    timeout = conf.webhooks_timeout() if timeout is None else timeout
    connection: http.client.HTTPConnection | None = None
    last_error = ""
    # Connect to the first vetted address that answers (a host may resolve to IPv6 and IPv4).
    for address in target.addresses:
        if target.scheme == "https":
            candidate: http.client.HTTPConnection = _PinnedHTTPSConnection(
                target.host,
                target.port,
                address=address,
                timeout=timeout,
                context=ssl.create_default_context(),
            )
        else:
            candidate = _PinnedHTTPConnection(target.host, target.port, address=address, timeout=timeout)
        try:
            candidate.connect()
        except OSError as exc:
            last_error = f"{type(exc).__name__}: {exc}"
            candidate.close()
            continue
        connection = candidate
        break
    if connection is None:
        return Response(status=None, excerpt="", error=last_error[:1000], duration_ms=elapsed())
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        excerpt = response.read(RESPONSE_EXCERPT).decode("utf-8", errors="replace")
        return Response(status=response.status, excerpt=excerpt, error="", duration_ms=elapsed())
    except (OSError, http.client.HTTPException) as exc:
        return Response(
            status=None, excerpt="", error=f"{type(exc).__name__}: {exc}"[:1000], duration_ms=elapsed()
        )
    finally:
        connection.close()
