"""One keep-alive HTTP/1.1 connection to an upstream: an asyncio protocol that sends one
request at a time and parses the response with llhttp (``httptools``).

It knows nothing of pools: the client (``http_client``) decides when to use, reuse or close
it. Body bytes are queued as they arrive; when the reader lags more than ``_HIGH_WATER``
bytes behind, the socket stops being read until it catches up, so a slow client cannot
make the gateway buffer a whole stream.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Final, cast

import httptools

# Pause reading the socket when this much body waits unread (aiohttp's reader pauses at
# 128 KiB too); resume when the reader has taken it.
_HIGH_WATER: Final = 128 * 1024


class HTTPClientError(Exception):
    """The upstream exchange failed; the message says how, without secrets."""


class ConnectFailed(HTTPClientError):
    """No connection could be made (refused, unresolvable, TLS handshake failed)."""


class ConnectTimeout(HTTPClientError, TimeoutError):
    """The connection (TCP and TLS) was not up within the connect timeout."""


class ReadTimeout(HTTPClientError, TimeoutError):
    """Upstream sent nothing for longer than the read timeout while we waited for it."""


class ConnectionBroken(HTTPClientError):
    """Upstream closed or reset the connection before the response was complete, or sent
    something that is not HTTP/1.1."""

    def __init__(self, message: str, *, before_response: bool) -> None:
        super().__init__(message)
        # True when not one byte of a response had arrived: the only case a retry may be
        # considered (see http_client's rule).
        self.before_response = before_response


class Connection(asyncio.Protocol):
    """Protocol of one upstream connection. Exchange lifecycle: ``send`` → ``wait_head`` →
    ``read_all`` or repeated ``read_chunk`` until ``b""`` → the owner checks ``reusable``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout_s: float) -> None:
        self._loop = loop
        self._read_timeout = read_timeout_s
        self.transport: asyncio.Transport | None = None
        self.closed = False
        # Set by the pool: whether this exchange runs on a connection that served one before.
        self.reused = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._fresh_parser = False
        self._reset_exchange()
        self._active = False

    def _reset_exchange(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._head_only = False
        self._interim = False
        self._head_done = False
        self._complete = False
        self._keep_alive = False
        self._got_bytes = False
        self._error: HTTPClientError | None = None
        self._body: list[bytes] = []
        self._buffered = 0
        self._want_all = False
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Requests and SSE chunks are small writes: never hold one back waiting for an ACK.
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass  # not TCP (a test's Unix socket): nothing to tune

    def data_received(self, data: bytes) -> None:
        if not self._active or self._complete:
            # Bytes nobody asked for (a misbehaving server): this connection cannot be trusted.
            self._keep_alive = False
            self.close()
            return
        self._got_bytes = True
        self._last_read = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ConnectionBroken("upstream switched protocols unasked", before_response=False))
            return
        except httptools.HttpParserError as exc:
            self._fail(ConnectionBroken(f"upstream sent an invalid HTTP response ({exc})", before_response=False))
            return
        # One wake-up per socket read, however many body callbacks it made.
        if self._body or self._complete or self._head_done:
            self._wake()

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        if self._active and not self._complete:
            if self._head_done and self._ends_at_close():
                # A body without length or chunking ends where the connection does.
                self._finish(keep_alive=False)
            elif self._head_done:
                self._fail(ConnectionBroken("upstream closed the connection mid-body", before_response=False))
            else:
                self._fail(
                    ConnectionBroken(
                        "upstream closed the connection before answering", before_response=not self._got_bytes
                    )
                )
        self._cancel_timer()

    def pause_writing(self) -> None:
        # Request bodies are already in memory and bounded by max_body_bytes: the transport
        # buffers them, nothing to pause.
        pass

    def resume_writing(self) -> None:
        pass

    # -- llhttp callbacks (httptools) ---------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            # An interim answer (100 Continue, 103 Early Hints): the real one follows.
            self._interim = True
            self.headers = []
            return
        self.status = status
        self._head_done = True
        if self._head_only:
            # A HEAD answer has no body whatever its headers say; the parser would wait for
            # one, so the next exchange gets a fresh parser.
            self._fresh_parser = True
            self._finish(keep_alive=self._parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        if self._complete:
            return
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._want_all and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if not self._complete:
            self._finish(keep_alive=self._parser.should_keep_alive())

    # -- used by the client -------------------------------------------------------------

    def send(self, data: bytes, body: bytes, *, head_only: bool) -> None:
        """Start an exchange: write the request (head, and body if any) and arm the read timer."""
        assert self.transport is not None
        if self._fresh_parser:
            self._parser = httptools.HttpResponseParser(self)
            self._fresh_parser = False
        self._reset_exchange()
        self._active = True
        self._head_only = head_only
        if body:
            if len(body) <= 64 * 1024:
                # Small bodies: one write, one segment on the wire.
                self.transport.write(data + body)
            else:
                self.transport.write(data)
                self.transport.write(body)
        else:
            self.transport.write(data)
        self._last_read = self._loop.time()
        self._timer = self._loop.call_at(self._last_read + self._read_timeout, self._on_timer)

    async def wait_head(self) -> None:
        """Wait for the response's status line and headers."""
        while not self._head_done:
            if self._error is not None:
                raise self._error
            await self._wait()

    async def read_all(self) -> bytes:
        """The whole remaining body."""
        self._want_all = True
        self._resume()
        while not self._complete:
            if self._error is not None:
                raise self._error
            await self._wait()
        body, self._body, self._buffered = self._body, [], 0
        return body[0] if len(body) == 1 else b"".join(body)

    async def read_chunk(self) -> bytes:
        """The body bytes that arrived since the last call (waiting for some); ``b""`` at the end."""
        while not self._body:
            if self._complete:
                return b""
            if self._error is not None:
                raise self._error
            await self._wait()
        body, self._body, self._buffered = self._body, [], 0
        self._resume()
        return body[0] if len(body) == 1 else b"".join(body)

    def read_nowait(self) -> bytes:
        """The body bytes already here, without waiting (``b""`` if none)."""
        if not self._body:
            return b""
        body, self._body, self._buffered = self._body, [], 0
        self._resume()
        return body[0] if len(body) == 1 else b"".join(body)

    @property
    def body_done(self) -> bool:
        """The whole body arrived and was read: the next read would return ``b""``."""
        return self._complete and not self._body

    @property
    def reusable(self) -> bool:
        """Whether the exchange ended cleanly, both sides keep the connection, and our request
        left completely: only then may another request use it."""
        return (
            self._complete
            and self._keep_alive
            and not self._body
            and not self.closed
            and self.transport is not None
            and not self.transport.is_closing()
            and self.transport.get_write_buffer_size() == 0
        )

    def end_exchange(self) -> None:
        self._active = False
        self._cancel_timer()
        if self._paused:
            self._resume()

    def close(self) -> None:
        self._active = False
        self._cancel_timer()
        if self.transport is not None and not self.transport.is_closing():
            # Abort, not close: whatever is left unsent or unread is of no use now.
            self.transport.abort()

    # -- internals ----------------------------------------------------------------------

    async def _wait(self) -> None:
        waiter = self._loop.create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _finish(self, *, keep_alive: bool) -> None:
        self._complete = True
        self._keep_alive = keep_alive
        self._cancel_timer()
        self._wake()

    def _fail(self, error: HTTPClientError) -> None:
        if self._error is None:
            self._error = error
        self._keep_alive = False
        self._cancel_timer()
        self._wake()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            if self.transport is not None:
                self.transport.resume_reading()
            # Time spent paused was the reader's, not upstream's.
            self._last_read = self._loop.time()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        # Armed once per exchange and re-armed only when it fires early, rather than reset on
        # every read: a socket read then costs a clock read, not a timer handle.
        self._timer = None
        if not self._active or self._complete:
            return
        now = self._loop.time()
        if self._paused:
            self._timer = self._loop.call_at(now + self._read_timeout, self._on_timer)
            return
        deadline = self._last_read + self._read_timeout
        if now < deadline:
            self._timer = self._loop.call_at(deadline, self._on_timer)
            return
        self._fail(ReadTimeout(f"upstream sent nothing for {self._read_timeout:g} s"))

    def _ends_at_close(self) -> bool:
        """A response body delimited by the connection's end: neither a length nor chunked."""
        if self._head_only or self.status in (204, 304):
            return False
        for name, value in self.headers:
            low = name.lower()
            if low == b"content-length":
                return False
            if low == b"transfer-encoding" and b"chunked" in value.lower():
                return False
        return True
