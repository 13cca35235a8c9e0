"""A lean HTTP/1.1 client for the gateway's upstream calls: one keep-alive pool per origin.

Why our own: under load most of the gateway's CPU went to aiohttp's client machinery (request
and response objects, its stream reader, per-request timers, tracing hooks); a proxy needs
far less — write a request, parse the answer with llhttp, hand over the body as it comes.

Pool: at most ``pool_size`` connections per origin (in use, idle and connecting); a request
beyond that waits for one. The most recently used idle connection is taken first; one idle
longer than ``idle_timeout_s``, or already seen closed by the server, is dropped unused. A
connection returns to the pool only after its response was read to the end and neither side
asked to close it; otherwise (an error, a cancelled caller, an unread body) it is closed.

Retry rule: a request is sent at most once, except in one case: a *reused* connection that
the server closed before sending a single byte of the response (the server closing an idle
connection just as we wrote), for a method RFC 9110 calls idempotent (GET, HEAD, OPTIONS,
TRACE, PUT, DELETE) — then it is sent once more on another connection. A POST is never sent
twice: after our bytes left, we cannot prove the server did not act on them. Connections
already seen closed are skipped *before* anything is written to them, which is not a retry.

Timeouts: ``connect_timeout_s`` for name lookup + TCP + TLS; ``read_timeout_s`` for the
longest silence while waiting on the server (for the head or for more body), not for a whole
stream. Names are resolved at most every five minutes (one shared lookup), each address tried
in turn; when all fail, the next connection resolves again.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from services.gateway.http_connection import (
    ConnectFailed,
    Connection,
    ConnectionBroken,
    ConnectTimeout,
    HTTPClientError,
    ReadTimeout,
)

# RFC 9110 §9.2.2: repeating these has the same effect as sending them once.
_IDEMPOTENT: Final = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"))
# Methods that carry no Content-Length when they have no body (others get "0", as aiohttp did).
_NO_BODY_METHODS: Final = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "CONNECT"))
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# How long resolved addresses are reused for new connections (aiohttp's ttl_dns_cache was 300).
_DNS_TTL_S: Final = 300.0


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int
    # The base URL's path without its trailing slash ("/v1"), prefixed to every target.
    base_path: str

    @classmethod
    def parse(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an http(s) base URL: {url!r}")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(f"a base URL takes no query, fragment or credentials: {url!r}")
        return cls(parts.scheme, parts.hostname, parts.port or _DEFAULT_PORTS[parts.scheme], parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host_header}"


class Response:
    """An upstream response whose head has arrived. Read the body with ``read`` or
    ``read_chunk``; always ``release`` it (``async with`` does), which returns the
    connection to the pool when the body was read to the end, and closes it otherwise."""

    __slots__ = ("_client", "_conn", "headers", "status")

    def __init__(self, client: HTTPClient, conn: Connection) -> None:
        self._client = client
        self._conn: Connection | None = conn
        self.status = conn.status
        # As received: names in their case, in order, repeated names kept.
        self.headers = conn.headers

    def header(self, name: bytes) -> bytes | None:
        """The first value of a header, by lower-case name."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    async def read(self) -> bytes:
        """The whole (remaining) body."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("response already released")
        return await conn.read_all()

    async def read_chunk(self) -> bytes:
        """The next body bytes as they arrive; ``b""`` once the body is complete."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("response already released")
        return await conn.read_chunk()

    def read_nowait(self) -> bytes:
        """The body bytes that have arrived and not been read, without waiting (maybe ``b""``)."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("response already released")
        return conn.read_nowait()

    @property
    def body_done(self) -> bool:
        """The body arrived to its end and was read: the response can be released for reuse."""
        conn = self._conn
        return conn is not None and conn.body_done

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._client._release(conn)

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class HTTPClient:
    """HTTP/1.1 client bound to one origin (scheme, host, port), with its keep-alive pool."""

    def __init__(
        self,
        base_url: str,
        *,
        pool_size: int,
        connect_timeout_s: float,
        read_timeout_s: float,
        idle_timeout_s: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.origin = Origin.parse(base_url)
        self._host_line = f"Host: {self.origin.host_header}\r\n"
        self._limit = pool_size
        self._connect_timeout = connect_timeout_s
        self._read_timeout = read_timeout_s
        self._idle_timeout = idle_timeout_s
        self._ssl: ssl.SSLContext | None = None
        if self.origin.scheme == "https":
            self._ssl = ssl_context or ssl.create_default_context()
        self._idle: deque[Connection] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._open = 0
        self._closed = False
        # The origin's resolved (family, sockaddr) pairs and until when to reuse them.
        self._addresses: list[tuple[int, tuple[str, int]]] = []
        self._addresses_until = 0.0
        # One lookup at a time: a burst of new connections on a cold cache shares it.
        self._lookup: asyncio.Task[list[tuple[int, tuple[str, int]]]] | None = None
        # Connections ever opened: lets tests and metrics see reuse.
        self.connections_opened = 0

    @property
    def open_connections(self) -> int:
        return self._open

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    async def request(
        self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes = b""
    ) -> Response:
        """Send a request and wait for the response's head. ``target`` is the path below the
        base URL's path, starting with "/", with its query string, already percent-encoded;
        Host and Content-Length are added here. Raises ``ConnectFailed``, ``ConnectTimeout``,
        ``ReadTimeout`` or ``ConnectionBroken`` (all ``HTTPClientError``)."""
        head = self._head(method, target, headers, body)
        head_only = method == "HEAD"
        may_retry = method in _IDEMPOTENT
        while True:
            conn = await self._acquire()
            try:
                conn.send(head, body, head_only=head_only)
                await conn.wait_head()
            except ConnectionBroken as exc:
                self._drop(conn)
                if may_retry and conn.reused and exc.before_response:
                    may_retry = False
                    continue
                raise
            except BaseException:
                self._drop(conn)
                raise
            return Response(self, conn)

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            self._drop(self._idle.pop())
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    # -- internals ----------------------------------------------------------------------

    def _head(self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes) -> bytes:
        lines = [f"{method} {self.origin.base_path}{target} HTTP/1.1\r\n", self._host_line]
        lines.extend([f"{name}: {value}\r\n" for name, value in headers])
        if body or method not in _NO_BODY_METHODS:
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        text = "".join(lines)
        # One count over the whole head instead of a check per header: a CR or LF inside a
        # name, value or target would add a line (header injection).
        if text.count("\n") != len(lines) or text.count("\r") != len(lines):
            raise ValueError("CR or LF inside a request line or header")
        # aiohttp decodes header bytes as UTF-8 with surrogateescape: this gives back the bytes.
        return text.encode("utf-8", "surrogateescape")

    async def _acquire(self) -> Connection:
        loop = asyncio.get_running_loop()
        while True:
            if self._closed:
                raise ConnectFailed(f"the client for {self.origin} is closed")
            idle = self._idle
            while idle:
                conn = idle.pop()
                if conn.closed or loop.time() - conn.idle_since > self._idle_timeout:
                    self._drop(conn)
                    continue
                conn.reused = True
                return conn
            if self._open < self._limit:
                self._open += 1
                try:
                    conn = await self._connect(loop)
                except BaseException:
                    self._open -= 1
                    self._wake_one()
                    raise
                self.connections_opened += 1
                return conn
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    # Woken for a free connection, then cancelled: pass the turn on.
                    self._wake_one()
                raise

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> Connection:
        origin = self.origin
        try:
            async with asyncio.timeout(self._connect_timeout):
                addresses = await self._resolve(loop)
                failure: OSError = OSError(f"{origin.host} has no address")
                for family, sockaddr in addresses:
                    try:
                        _, conn = await loop.create_connection(
                            lambda: Connection(loop, self._read_timeout),
                            sockaddr[0],
                            sockaddr[1],
                            family=family,
                            ssl=self._ssl,
                            server_hostname=origin.host if self._ssl is not None else None,
                        )
                    except ssl.SSLError:
                        raise  # the server answered: another address of it will not do better
                    except OSError as exc:
                        failure = exc
                        continue
                    return conn
                # Every address failed: resolve afresh next time (the service may have moved).
                self._addresses = []
                raise failure
        except TimeoutError as exc:
            raise ConnectTimeout(f"no connection to {origin} within {self._connect_timeout:g} s") from exc
        except OSError as exc:
            # ssl.SSLError (certificate, handshake) and socket.gaierror are OSErrors too.
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise ConnectFailed(f"cannot connect to {origin}: {reason}") from exc

    async def _resolve(self, loop: asyncio.AbstractEventLoop) -> list[tuple[int, tuple[str, int]]]:
        """The origin's addresses, resolved at most once per ``_DNS_TTL_S`` (a lookup per new
        connection would put the resolver on the path of every burst)."""
        if self._addresses and loop.time() < self._addresses_until:
            return self._addresses
        if self._lookup is None:
            self._lookup = loop.create_task(self._look_up(loop))
            self._lookup.add_done_callback(self._lookup_done)
        # Shielded: one caller giving up (cancelled, timed out) does not fail the others' lookup.
        return await asyncio.shield(self._lookup)

    async def _look_up(self, loop: asyncio.AbstractEventLoop) -> list[tuple[int, tuple[str, int]]]:
        infos = await loop.getaddrinfo(self.origin.host, self.origin.port, type=socket.SOCK_STREAM)
        found: list[tuple[int, tuple[str, int]]] = []
        for family, _, _, _, sockaddr in infos:
            entry = (int(family), (str(sockaddr[0]), int(sockaddr[1])))
            if entry not in found:
                found.append(entry)
        self._addresses, self._addresses_until = found, loop.time() + _DNS_TTL_S
        return found

    def _lookup_done(self, task: asyncio.Task[list[tuple[int, tuple[str, int]]]]) -> None:
        self._lookup = None
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have gone

    def _release(self, conn: Connection) -> None:
        conn.end_exchange()
        if self._closed or not conn.reusable:
            self._drop(conn)
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        conn.idle_since = now
        idle = self._idle
        # Sweep connections idle too long from the cold end (the pool is used from the hot end).
        while idle and now - idle[0].idle_since > self._idle_timeout:
            self._drop(idle.popleft())
        idle.append(conn)
        self._wake_one()

    def _drop(self, conn: Connection) -> None:
        conn.close()
        self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


__all__ = [
    "ConnectFailed",
    "ConnectTimeout",
    "ConnectionBroken",
    "HTTPClient",
    "HTTPClientError",
    "Origin",
    "ReadTimeout",
    "Response",
]
