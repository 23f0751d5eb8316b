"""Outbound HTTP to URLs that customers give us (media, webhooks), safe from SSRF.

- Only http(s) URLs with a host. The host is resolved once; every address it resolves to must
  be globally routable unicast: loopback, private, link-local, CGNAT, reserved, multicast and
  unspecified addresses are refused, and so are IPv6 forms that embed such an IPv4 address
  (IPv4-mapped, 6to4, NAT64, Teredo). Any spelling the resolver understands (`127.1`,
  `2130706433`, `0x7f000001`, `[::ffff:127.0.0.1]`) is caught because the check is on the result.
- The connection goes to the address that was checked (the Host header and TLS SNI keep the
  name), so a second DNS answer cannot swap in another address.
- Redirects are followed by hand, each hop checked the same way.
- ALLOW_PRIVATE_URLS lifts the address check, for development and tests only.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import io
import ipaddress
import re
import select
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpcore
import httpx
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_6TO4 = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")
# Forms Python's `is_global` lets through: IPv4-compatible (::a.b.c.d, deprecated) and
# IPv4-translated (::ffff:0:a.b.c.d) addresses carry an IPv4 address in their last 32 bits;
# local-use NAT64 (RFC 8215) and site-local (deprecated) addresses are never public.
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")


class UrlRefused(Exception):
    """The URL is not one we will fetch (shape or address)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FetchFailed(Exception):
    """The URL was allowed but could not be fetched (refused, unresolvable, timed out...)."""

    def __init__(self, reason: str, *, timeout: bool = False, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.timeout = timeout
        self.unreachable = unreachable


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _6TO4:
        return address.sixtofour
    if address in _TEREDO:
        return address.teredo[1] if address.teredo else None
    if address in _NAT64 or address in _IPV4_TRANSLATED or (
            address in _IPV4_COMPATIBLE and int(address) > 1):  # not :: or ::1 themselves
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: IPAddress) -> str | None:
    """Why we will not connect to this address, or None when it is a public unicast one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = address_refusal(embedded)
            return f"embeds {embedded}, which {inner}" if inner else None
    if isinstance(address, ipaddress.IPv6Address) and address in _LOCAL_NAT64:
        return "is a local-use NAT64 address"
    if isinstance(address, ipaddress.IPv6Address) and address in _SITE_LOCAL:
        return "is a site-local address"
    if address.is_multicast:
        return "is a multicast address"
    if address.is_unspecified:
        return "is the unspecified address"
    if address.is_loopback:
        return "is a loopback address"
    if address.is_link_local:
        return "is a link-local address"
    if address.is_private:
        return "is a private address"
    if not address.is_global:
        return "is not a public address"
    return None


def _is_address_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def resolve(host: str, port: int) -> list[IPAddress]:
    """All addresses of `host` (what the connection could go to)."""
    if settings.OUTBOUND_LOOPBACK_ONLY:
        return _resolve_loopback_only(host, port)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchFailed(f"the host {host} could not be resolved", unreachable=True) from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def _resolve_loopback_only(host: str, port: int) -> list[IPAddress]:
    """For test and air-gapped environments: no DNS query at all, and nothing but loopback."""
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if host != "localhost":
            raise FetchFailed(f"{host}: only loopback hosts are reached here",
                              unreachable=True) from None
        addresses = [ipaddress.ip_address("127.0.0.1")]
    if not all(a.is_loopback for a in addresses):
        raise FetchFailed(f"{host}: only loopback hosts are reached here", unreachable=True)
    return addresses


@dataclass(frozen=True)
class Target:
    url: str  # the URL to request, host replaced by the checked address
    host_header: str
    sni_hostname: str | None


# Control characters can go into no request line or Host header (urlsplit drops tabs and line
# breaks itself, silently).
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def check_url(url: str) -> Target:
    """Validate a URL and pin it to a checked address. Raises UrlRefused or FetchFailed.
    Spaces in the path or query are sent encoded (`%20`), as browsers and httpx send them."""
    if _CONTROL_CHARACTERS.search(url):
        raise UrlRefused("the URL is malformed")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused("the URL is malformed") from exc
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("only http and https URLs are allowed")
    host = parts.hostname
    if not host:
        raise UrlRefused("the URL has no host")
    if parts.username or parts.password:
        raise UrlRefused("credentials in the URL are not allowed")
    if " " in parts.netloc:
        raise UrlRefused("the URL is malformed")
    port = port or (443 if parts.scheme == "https" else 80)
    addresses = resolve(host, port)
    if not settings.ALLOW_PRIVATE_URLS:
        for address in addresses:
            refusal = address_refusal(address)
            if refusal and _is_address_literal(host):
                raise UrlRefused(f"{host} {refusal}")
            if refusal:
                # Say no more of a name: what it resolves to inside our network is not the
                # caller's to learn.
                raise UrlRefused(f"{host} does not resolve to a public address")
    address = addresses[0]
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{literal}:{port}"
    host_header = parts.netloc.rsplit("@", 1)[-1]
    path, query = (parts.path or "/").replace(" ", "%20"), parts.query.replace(" ", "%20")
    pinned = urlunsplit((parts.scheme, netloc, path, query, ""))
    is_name = host != str(address)
    sni = host if parts.scheme == "https" and is_name else None
    return Target(url=pinned, host_header=host_header, sni_hostname=sni)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """The TLS settings of every outbound request, made once per process: building them
    (certifi's roots, never the environment's, as httpx.Client(trust_env=False) would) loads
    and parses every root certificate, which a client made per delivery run did each time."""
    return httpx.create_ssl_context(trust_env=False)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every step waits no longer than what is left before one deadline:
    a socket's timeout counts per read, so a server that drips its answer a byte at a time
    would otherwise hold the caller as long as it likes."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream, self._deadline = stream, deadline

    def _left(self, timeout: float | None) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("the exchange's deadline passed")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._left(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(
            self._stream.start_tls(ssl_context, server_hostname, self._left(timeout)),
            self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own connections, each bound to the deadline of the exchange."""

    def __init__(self, deadline: float) -> None:
        self._backend, self._deadline = httpcore.SyncBackend(), deadline

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ConnectTimeout("the exchange's deadline passed")
        stream = self._backend.connect_tcp(
            host, port, left if timeout is None else min(timeout, left), local_address,
            socket_options)
        return _DeadlineStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _Body(httpx.SyncByteStream):
    """An httpcore response's body as httpx reads it, its failures as FetchFailed."""

    def __init__(self, response: httpcore.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._response.iter_stream()
        except httpcore.TimeoutException as exc:
            raise FetchFailed("no answer in time", timeout=True) from exc
        except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
            raise FetchFailed(f"the transfer failed: {type(exc).__name__}",
                              unreachable=True) from exc

    def close(self) -> None:
        self._response.close()


@contextlib.contextmanager
def safe_stream(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    timeout: float = 5.0,
    deadline: float | None = None,
    max_redirects: int = 3,
) -> Iterator[httpx.Response]:
    """Open a response (streamed) with every hop checked. The caller reads what it needs.

    `timeout`: the longest wait for one step (connecting, one read); `deadline`: the most the
    whole exchange may take, redirects, headers and body included (default: `timeout`).
    Failures, reading the body included, raise FetchFailed."""
    ends_at = time.monotonic() + (deadline if deadline is not None else timeout)
    step = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
    # httpcore (under httpx) takes a network backend, which is where the deadline lives;
    # trust_env does not exist at this level: no proxy from the environment routes around
    # the guard.
    with httpcore.ConnectionPool(ssl_context=_ssl_context(),
                                 network_backend=_DeadlineBackend(ends_at)) as pool:
        for _hop in range(max_redirects + 1):
            target = check_url(url)
            extensions: dict[str, Any] = {"timeout": step}
            if target.sni_hostname:
                extensions["sni_hostname"] = target.sni_hostname
            request_headers = {"Accept": "*/*", **(headers or {}),
                               "Host": target.host_header}
            try:
                raw = pool.handle_request(httpcore.Request(
                    method, target.url, headers=list(request_headers.items()),
                    content=content, extensions=extensions))
            except httpcore.TimeoutException as exc:
                raise FetchFailed("no answer in time", timeout=True) from exc
            except (httpcore.NetworkError, httpcore.ProtocolError,
                    httpcore.UnsupportedProtocol) as exc:
                raise FetchFailed(f"could not connect: {type(exc).__name__}",
                                  unreachable=True) from exc
            response = httpx.Response(raw.status, headers=raw.headers, stream=_Body(raw))
            if response.is_redirect and max_redirects:
                location = response.headers.get("location", "")
                response.close()
                url = urljoin(url, location)
                continue
            try:
                yield response
            finally:
                response.close()
            return
        raise FetchFailed("too many redirects")


@dataclass(frozen=True)
class Answer:
    status_code: int
    snippet: bytes
    headers: httpx.Headers


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to the checked address, with the certificate checked against the URL's name (and
    that name sent as SNI): http.client would use the address for both."""

    def __init__(self, address: str, port: int, *, server_hostname: str, timeout: float,
                 context: ssl.SSLContext) -> None:
        super().__init__(address, port, timeout=timeout, context=context)
        self.server_hostname = server_hostname
        self.tls_context = context

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self.tls_context.wrap_socket(self.sock,
                                                 server_hostname=self.server_hostname)


class _DeadlineReader(io.RawIOBase):
    """A socket read until a deadline: each read waits only what is left of it, so an answer
    dripped a byte at a time still ends there (a socket's own timeout counts per read)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock, self._deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer's deadline passed")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class _DeadlineSocket:
    """What http.client's response reads from: the socket, through a `_DeadlineReader`."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock, self._deadline = sock, deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


def _idle_socket_closed(sock: socket.socket) -> bool:
    """Whether a kept-alive connection, idle between two posts, was closed by the server (or
    sent something unasked): readable while idle means it cannot be reused."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class PinnedEndpoint:
    """One customer URL, checked and pinned once, then posted to several times over one
    kept-alive connection (webhook deliveries to an endpoint). Redirects are not followed.

    A webhook post is the worker's most frequent request, so this speaks HTTP/1.1 through the
    standard library's http.client, with the TLS settings of every other outbound request: it
    costs a post less than half the CPU of httpx or httpcore (bench/HISTORY.md). http.client
    connects and parses the answers; the request itself is written here, in one write
    (`send`). Like httpcore's pool, it drops a
    connection idle for KEEPALIVE_SECONDS or closed by the server, and reconnects before
    posting. A post is a `send` and a `receive`, so that `EndpointPool` can have several in
    flight at once.
    `target`: the URL already checked (a pool's connections share one check)."""

    SNIPPET_BYTES = 500
    KEEPALIVE_SECONDS = 5.0

    def __init__(self, url: str, *, timeout: float = 5.0, target: Target | None = None) -> None:
        self.target = target or check_url(url)
        parts = urlsplit(self.target.url)
        self.path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        self.https = parts.scheme == "https"
        self.address, self.port = parts.hostname, parts.port
        self.timeout = timeout
        self.connection: http.client.HTTPConnection | None = None
        self.idle_since = 0.0

    def _connection(self) -> http.client.HTTPConnection:
        connection = self.connection
        if connection is not None and (
            time.monotonic() - self.idle_since > self.KEEPALIVE_SECONDS
            or connection.sock is None or _idle_socket_closed(connection.sock)
        ):
            self.close()
            connection = None
        if connection is None:
            if self.https:
                connection = _PinnedHTTPSConnection(
                    self.address, self.port, timeout=self.timeout, context=_ssl_context(),
                    server_hostname=self.target.sni_hostname or self.address)
            else:
                connection = http.client.HTTPConnection(self.address, self.port,
                                                        timeout=self.timeout)
            connection.connect()
            self.connection = connection
        return connection

    def post(self, content: bytes, headers: dict[str, str]) -> Answer:
        self.send(content, headers)
        return self.receive()

    def send(self, content: bytes, headers: dict[str, str]) -> None:
        """Send a post (connecting first if need be); `receive` reads its answer.

        The request goes out in one write, its head and body together: http.client's
        `request` writes them apart, two packets and two wake-ups of the receiver for every
        post, and checks every header's name and value each time. Here the path and the host
        were checked with the URL, and the headers are the service's own (a value that could
        break the head is refused all the same)."""
        lines = [f"POST {self.path} HTTP/1.1", f"Host: {self.target.host_header}",
                 "Accept-Encoding: identity", f"Content-Length: {len(content)}", "Accept: */*"]
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name!r} would break the request")
            lines.append(f"{name}: {value}")
        lines += ["", ""]
        request = "\r\n".join(lines).encode("latin-1") + content
        try:
            self._connection().sock.sendall(request)
        except OSError as exc:
            raise self._failed(exc) from exc

    def receive(self, timeout: float | None = None) -> Answer:
        """The answer to the post sent last, within `timeout` seconds (default: the
        endpoint's)."""
        connection = self.connection
        if connection is None or connection.sock is None:
            raise FetchFailed("could not connect: no request in flight", unreachable=True)
        sock = connection.sock
        deadline = time.monotonic() + (self.timeout if timeout is None else max(timeout, 0.001))
        try:
            # What `getresponse` does, without its bookkeeping of a request it did not send.
            response = http.client.HTTPResponse(_DeadlineSocket(sock, deadline), method="POST")
            response.begin()
            snippet = response.read(self.SNIPPET_BYTES)
            if response.will_close or not response.isclosed():
                # Closed by the server, or the rest is not read: the connection is not reused.
                self.close()
            else:
                sock.settimeout(self.timeout)
            # http.client hands header values over as latin-1 text; as bytes, httpx takes any
            # value a receiver sends (`X-Note: café`), not only ASCII.
            headers = httpx.Headers([(name.encode("latin-1"), value.encode("latin-1"))
                                     for name, value in response.getheaders()])
            answer = Answer(response.status, snippet, headers)
        except (OSError, http.client.HTTPException) as exc:
            raise self._failed(exc) from exc
        self.idle_since = time.monotonic()
        return answer

    def _failed(self, exc: Exception) -> FetchFailed:
        self.close()
        if isinstance(exc, TimeoutError):
            return FetchFailed("no answer in time", timeout=True)
        return FetchFailed(f"could not connect: {type(exc).__name__}", unreachable=True)

    def fileno(self) -> int:
        return self.connection.sock.fileno()

    def has_buffered_answer(self) -> bool:
        """TLS may hold decrypted bytes that the socket no longer shows as readable."""
        sock = self.connection.sock
        return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def __enter__(self) -> PinnedEndpoint:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Post(NamedTuple):
    key: Any  # the caller's, handed back with the answer
    subject: Hashable  # posts of one subject go one at a time, in order
    body: bytes
    headers: dict[str, str]


class EndpointPool:
    """Up to `size` kept-alive connections to one URL, checked once, for posting many bodies
    to it at once (a webhook endpoint's deliveries). With one connection the endpoint's
    answer time caps its throughput: at 20 ms an answer, 50 posts a second, fewer than one
    busy account's status events. Each post still gets its own `timeout`."""

    def __init__(self, url: str, *, timeout: float = 5.0, size: int = 10) -> None:
        self.target = check_url(url)
        self.url, self.timeout, self.size = url, timeout, size
        self.https = urlsplit(self.target.url).scheme == "https"
        self._idle: list[PinnedEndpoint] = []
        self._in_flight: dict[PinnedEndpoint, tuple[Post, float]] = {}
        # The in-flight connections' sockets, by descriptor, watched for their answers.
        self._poller = select.poll()
        self._polled: dict[int, PinnedEndpoint] = {}

    def post_all(self, posts: Iterable[Post], *, go_on: Callable[[], bool] = lambda: True,
                 ) -> Iterator[tuple[Any, Answer | FetchFailed, float]]:
        """Post each of `posts`, up to `size` at a time, and yield (key, answer or failure,
        seconds it took) as the answers come. Two posts of one subject are never in flight
        together and go in the given order; posts of other subjects may pass them. `posts`
        is drawn from only when a connection is free, and no post is sent once `go_on()` is
        false: what is already in flight is still answered."""
        posts = iter(posts)
        in_flight = self._in_flight
        for abandoned in list(in_flight):  # by an earlier call that was not run to its end
            self._land(abandoned)
            abandoned.close()
        busy: set[Hashable] = set()  # the subjects in flight
        held: deque[Post] = deque()  # drawn, behind a post of their subject

        def next_post() -> Post | None:
            waiting = busy  # the subjects a new post must not have: in flight, or held
            if held:
                waiting = set(busy)
                for index, post in enumerate(held):
                    if post.subject not in waiting:
                        del held[index]
                        return post
                    waiting.add(post.subject)
            while len(held) < 4 * self.size:
                post = next(posts, None)
                if post is None or post.subject not in waiting:
                    return post
                held.append(post)
            return None  # too many held: an answer must come first

        while True:
            while len(in_flight) < self.size and go_on():
                post = next_post()
                if post is None:
                    break
                endpoint = self._idle.pop() if self._idle else PinnedEndpoint(
                    self.url, timeout=self.timeout, target=self.target)
                started = time.monotonic()
                try:
                    endpoint.send(post.body, post.headers)
                except FetchFailed as failed:
                    self._idle.append(endpoint)  # closed; it reconnects when used again
                    yield post.key, failed, time.monotonic() - started
                    continue
                in_flight[endpoint] = (post, started)
                self._polled[endpoint.fileno()] = endpoint
                self._poller.register(endpoint.fileno(), select.POLLIN)
                busy.add(post.subject)
            if not in_flight:
                return
            for endpoint in self._answered():
                post, started = self._land(endpoint)
                busy.discard(post.subject)
                try:
                    answer = endpoint.receive(started + self.timeout - time.monotonic())
                except FetchFailed as failed:
                    answer = failed
                yield post.key, answer, time.monotonic() - started

    def _land(self, endpoint: PinnedEndpoint) -> tuple[Post, float]:
        """Take a post out of flight (before its answer is read: reading may close the
        connection), its connection back among the idle ones."""
        fd = endpoint.fileno()
        self._poller.unregister(fd)
        del self._polled[fd]
        self._idle.append(endpoint)
        return self._in_flight.pop(endpoint)

    def _answered(self) -> list[PinnedEndpoint]:
        """The in-flight posts whose answer has begun to arrive, waiting for one if none has;
        when the oldest runs out of time first, that one (its receive then times out)."""
        in_flight = self._in_flight
        if self.https:
            ready = [endpoint for endpoint in in_flight if endpoint.has_buffered_answer()]
            if ready:
                return ready
        oldest = min(in_flight, key=lambda endpoint: in_flight[endpoint][1])
        wait = in_flight[oldest][1] + self.timeout - time.monotonic()
        events = self._poller.poll(max(wait, 0) * 1000)
        return [self._polled[fd] for fd, _event in events] or [oldest]

    def close(self) -> None:
        for endpoint in list(self._in_flight):
            self._land(endpoint)
        for endpoint in self._idle:
            endpoint.close()
        self._idle.clear()

    def __enter__(self) -> EndpointPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
