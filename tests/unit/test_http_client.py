"""The gateway's upstream HTTP/1.1 client against real loopback servers written here.

Each server is a raw asyncio server scripted per test, so every framing case (length,
chunked at odd boundaries, close-delimited, no body) and every failure (refused, reset
mid-body, silence, idle close) is produced byte for byte. Every test runs on both the
standard event loop and uvloop (the gateway's).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvloop

from services.gateway.http_client import (
    ConnectFailed,
    ConnectionBroken,
    ConnectTimeout,
    HTTPClient,
    HTTPClientError,
    ReadTimeout,
)

Run = Callable[[Coroutine[Any, Any, Any]], Any]
Handler = Callable[["Peer"], Awaitable[None]]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def _run(coro: Coroutine[Any, Any, Any]) -> Any:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(asyncio.wait_for(coro, 30))

    return _run


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Peer:
    """One accepted connection, with helpers to read a request and write raw bytes."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    index: int

    async def request(self) -> Request | None:
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode().split("\r\n")
        method, target, _ = lines[0].split(" ")
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        n = int(headers.get("content-length", "0"))
        body = await self.reader.readexactly(n) if n else b""
        return Request(method, target, headers, body)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def close(self) -> None:
        self.writer.close()


@dataclass
class Server:
    handler: Handler
    ssl_context: ssl.SSLContext | None = None
    peers: list[Peer] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    server: asyncio.Server | None = None
    port: int = 0

    async def start(self) -> Server:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}/base"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(reader, writer, len(self.peers))
        self.peers.append(peer)
        try:
            await self.handler(peer)
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for p in self.peers:
            p.writer.close()


def client(server: Server, **kw: Any) -> HTTPClient:
    opts: dict[str, Any] = {"pool_size": 8, "connect_timeout_s": 2.0, "read_timeout_s": 5.0, **kw}
    return HTTPClient(server.url, **opts)


def ok(body: bytes, extra: str = "") -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def serve_each(server_reply: Callable[[Request], bytes]) -> Handler:
    """A keep-alive server: answers every request on the connection with ``server_reply``."""

    async def handler(peer: Peer) -> None:
        while (req := await peer.request()) is not None:
            SERVED.append(req)
            await peer.send(server_reply(req))

    return handler


SERVED: list[Request] = []


@pytest.fixture(autouse=True)
def _clear_served() -> None:
    SERVED.clear()


def test_content_length_body_and_request_framing(run: Run) -> None:
    async def main() -> None:
        srv = await Server(serve_each(lambda r: ok(b'{"echo":"' + r.body + b'"}', "X-Up: 1\r\nX-Up: 2\r\n"))).start()
        c = client(srv)
        async with await c.request("POST", "/chat?a=1&b=%20", [("X-Mine", "v")], b"hello") as resp:
            assert resp.status == 200
            assert [v for k, v in resp.headers if k == b"X-Up"] == [b"1", b"2"]
            assert resp.header(b"content-type") == b"application/json"
            assert await resp.read() == b'{"echo":"hello"}'
        req = SERVED[0]
        assert (req.method, req.target, req.body) == ("POST", "/base/chat?a=1&b=%20", b"hello")
        assert req.headers["host"] == f"127.0.0.1:{srv.port}"
        assert req.headers["content-length"] == "5"
        assert req.headers["x-mine"] == "v"
        # A bodiless GET carries no Content-Length; a bodiless POST says 0.
        async with await c.request("GET", "/m", []) as resp:
            await resp.read()
        async with await c.request("POST", "/m", []) as resp:
            await resp.read()
        assert "content-length" not in SERVED[1].headers
        assert SERVED[2].headers["content-length"] == "0"
        await c.close()
        await srv.stop()

    run(main())


def test_chunked_body_at_odd_boundaries(run: Run) -> None:
    payload = b"".join(b'data: {"n": %d}\n\n' % i for i in range(50))
    chunks = [payload[i : i + 37] for i in range(0, len(payload), 37)]
    wire = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"

    async def handler(peer: Peer) -> None:
        while await peer.request() is not None:
            data = head + wire
            # Splits fall inside size lines, inside CRLFs and inside data.
            for i in range(0, len(data), 13):
                await peer.send(data[i : i + 13])
                await asyncio.sleep(0)

    async def main() -> None:
        srv = await Server(handler).start()
        c = client(srv)
        got = []
        async with await c.request("POST", "/s", [], b"{}") as resp:
            while chunk := await resp.read_chunk():
                got.append(chunk)
        assert b"".join(got) == payload
        assert len(got) > 1  # delivered as it came, not at the end
        async with await c.request("POST", "/s", [], b"{}") as resp:
            assert await resp.read() == payload
        assert c.connections_opened == 1  # the chunked answer ended cleanly: reused
        await c.close()
        await srv.stop()

    run(main())


def test_close_delimited_body(run: Run) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart one, ")
        await asyncio.sleep(0.02)
        await peer.send(b"part two")
        peer.close()

    async def main() -> None:
        srv = await Server(handler).start()
        c = client(srv)
        async with await c.request("GET", "/x", []) as resp:
            assert await resp.read() == b"part one, part two"
        assert c.open_connections == 0  # ended by close: never pooled
        await c.close()
        await srv.stop()

    run(main())


def test_keep_alive_reuses_one_connection(run: Run) -> None:
    async def main() -> None:
        srv = await Server(serve_each(lambda r: ok(b"{}"))).start()
        c = client(srv)
        for _ in range(3):
            async with await c.request("POST", "/x", [], b"{}") as resp:
                assert await resp.read() == b"{}"
        assert len(srv.peers) == 1
        assert c.connections_opened == 1
        assert c.idle_connections == 1
        await c.close()
        await srv.stop()

    run(main())


def test_server_closing_an_idle_pooled_connection(run: Run) -> None:
    async def handler(peer: Peer) -> None:
        req = await peer.request()
        if req is not None:
            SERVED.append(req)
            await peer.send(ok(b"{}"))
        peer.close()  # keep-alive promised, then the idle connection is closed

    async def main() -> None:
        srv = await Server(handler).start()
        c = client(srv)
        async with await c.request("POST", "/x", [], b"1") as resp:
            await resp.read()
        await asyncio.sleep(0.1)  # the FIN arrives while the connection idles in the pool
        async with await c.request("POST", "/x", [], b"2") as resp:
            assert await resp.read() == b"{}"
        assert [r.body for r in SERVED] == [b"1", b"2"]  # each POST sent exactly once
        assert c.connections_opened == 2
        await c.close()
        await srv.stop()

    run(main())


def _closes_second_request_unanswered() -> Handler:
    """First connection: answers one request, then reads the next and closes without a byte
    (the idle-close race). Later connections answer normally."""

    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            req = await peer.request()
            assert req is not None
            SERVED.append(req)
            await peer.send(ok(b"first"))
            req = await peer.request()
            if req is not None:
                SERVED.append(req)
            peer.writer.transport.abort()
            return
        await serve_each(lambda r: ok(b"again"))(peer)

    return handler


def test_idempotent_request_retried_once_when_reused_connection_closes_unanswered(run: Run) -> None:
    async def main() -> None:
        srv = await Server(_closes_second_request_unanswered()).start()
        c = client(srv)
        async with await c.request("GET", "/x", []) as resp:
            assert await resp.read() == b"first"
        async with await c.request("GET", "/y", []) as resp:
            assert await resp.read() == b"again"
        assert [r.target for r in SERVED] == ["/base/x", "/base/y", "/base/y"]
        await c.close()
        await srv.stop()

    run(main())


def test_post_never_sent_twice(run: Run) -> None:
    async def main() -> None:
        srv = await Server(_closes_second_request_unanswered()).start()
        c = client(srv)
        async with await c.request("POST", "/x", [], b"one") as resp:
            assert await resp.read() == b"first"
        with pytest.raises(ConnectionBroken) as info:
            await c.request("POST", "/y", [], b"two")
        assert info.value.before_response
        await asyncio.sleep(0.1)
        assert [r.body for r in SERVED] == [b"one", b"two"]  # the server saw it once; not resent
        assert c.open_connections == 0
        await c.close()
        await srv.stop()

    run(main())


def test_server_dying_mid_body(run: Run) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
        await asyncio.sleep(0.02)
        peer.writer.transport.abort()

    async def chunked_handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await asyncio.sleep(0.02)
        peer.writer.transport.abort()

    async def main() -> None:
        srv = await Server(handler).start()
        c = client(srv)
        resp = await c.request("GET", "/x", [])
        with pytest.raises(ConnectionBroken) as info:
            await resp.read()
        assert not info.value.before_response
        resp.release()
        assert c.open_connections == 0
        await srv.stop()

        srv = await Server(chunked_handler).start()
        c = client(srv)
        resp = await c.request("GET", "/x", [])
        assert await resp.read_chunk() == b"hello"
        with pytest.raises(ConnectionBroken):
            await resp.read_chunk()
        resp.release()
        assert c.open_connections == 0
        await srv.stop()

    run(main())


def test_read_timeout_is_silence_not_total_time(run: Run) -> None:
    async def silent(peer: Peer) -> None:
        await peer.request()
        await asyncio.sleep(10)

    async def stalls_mid_body(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await asyncio.sleep(10)

    async def slow_but_steady(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(8):
            await asyncio.sleep(0.1)
            await peer.send(b"1\r\n.\r\n")
        await peer.send(b"0\r\n\r\n")

    async def main() -> None:
        srv = await Server(silent).start()
        c = client(srv, read_timeout_s=0.3)
        t0 = time.monotonic()
        with pytest.raises(ReadTimeout) as info:
            await c.request("POST", "/x", [], b"{}")
        assert isinstance(info.value, TimeoutError)
        assert 0.25 < time.monotonic() - t0 < 2.0
        assert c.open_connections == 0
        await srv.stop()

        srv = await Server(stalls_mid_body).start()
        c = client(srv, read_timeout_s=0.3)
        resp = await c.request("GET", "/x", [])
        with pytest.raises(ReadTimeout):
            await resp.read()
        resp.release()
        await srv.stop()

        srv = await Server(slow_but_steady).start()
        c = client(srv, read_timeout_s=0.3)
        t0 = time.monotonic()
        async with await c.request("GET", "/x", []) as resp:
            assert await resp.read() == b"." * 8  # 0.8 s in all, never 0.3 s of silence
        assert time.monotonic() - t0 > 0.7
        await c.close()
        await srv.stop()

    run(main())


def test_refused_connection(run: Run) -> None:
    async def main() -> None:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        c = HTTPClient(f"http://127.0.0.1:{port}", pool_size=2, connect_timeout_s=2, read_timeout_s=2)
        with pytest.raises(ConnectFailed, match="cannot connect"):
            await c.request("POST", "/x", [], b"{}")
        assert c.open_connections == 0

    run(main())


def test_connect_timeout(run: Run) -> None:
    async def main() -> None:
        # A listener that never accepts, its backlog filled: further SYNs go unanswered.
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(0)
        port = lsock.getsockname()[1]
        fillers = []
        for _ in range(3):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(("127.0.0.1", port))
            fillers.append(f)
        await asyncio.sleep(0.05)
        c = HTTPClient(f"http://127.0.0.1:{port}", pool_size=2, connect_timeout_s=0.3, read_timeout_s=2)
        t0 = time.monotonic()
        with pytest.raises(ConnectTimeout) as info:
            await c.request("POST", "/x", [], b"{}")
        assert isinstance(info.value, TimeoutError)
        assert time.monotonic() - t0 < 2.0
        assert c.open_connections == 0
        for f in fillers:
            f.close()
        lsock.close()

    run(main())


def test_head_204_304_have_no_body_and_keep_the_connection(run: Run) -> None:
    def reply(req: Request) -> bytes:
        if req.method == "HEAD":
            # The length of the body a GET would get; none follows.
            return b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"
        if req.target.endswith("/nc"):
            return b"HTTP/1.1 204 No Content\r\n\r\n"
        if req.target.endswith("/nm"):
            return b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"
        return ok(b"after")

    async def main() -> None:
        srv = await Server(serve_each(reply)).start()
        c = client(srv)
        for method, path in (("HEAD", "/h"), ("GET", "/nc"), ("GET", "/nm"), ("HEAD", "/h")):
            async with await c.request(method, path, []) as resp:
                assert await resp.read() == b""
                assert resp.status in (200, 204, 304)
            async with await c.request("GET", "/after", []) as resp:
                assert await resp.read() == b"after"
        assert c.connections_opened == 1
        await c.close()
        await srv.stop()

    run(main())


def test_interim_100_continue_is_skipped(run: Run) -> None:
    async def main() -> None:
        srv = await Server(
            serve_each(lambda r: b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"final", "X-Final: yes\r\n"))
        ).start()
        c = client(srv)
        async with await c.request("POST", "/x", [], b"{}") as resp:
            assert resp.status == 200
            assert resp.header(b"x-final") == b"yes"
            assert await resp.read() == b"final"
        async with await c.request("POST", "/x", [], b"{}") as resp:
            assert await resp.read() == b"final"
        assert c.connections_opened == 1
        await c.close()
        await srv.stop()

    run(main())


def test_large_bodies_both_ways(run: Run) -> None:
    big = bytes(range(256)) * (8 * 4096)  # 8 MiB

    async def main() -> None:
        srv = await Server(serve_each(lambda r: ok(r.body))).start()
        c = client(srv)
        async with await c.request("POST", "/x", [], big) as resp:
            assert await resp.read() == big
        async with await c.request("POST", "/x", [], b"small") as resp:
            assert await resp.read() == b"small"
        assert c.connections_opened == 1
        await c.close()
        await srv.stop()

    run(main())


def test_slow_reader_pauses_the_upstream_socket(run: Run) -> None:
    total = 64 * 1024 * 1024
    block = b"z" * (1024 * 1024)
    written = [0]

    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
        for _ in range(total // len(block)):
            await peer.send(block)
            written[0] += len(block)

    async def main() -> None:
        srv = await Server(handler).start()
        c = client(srv)
        resp = await c.request("GET", "/x", [])
        got = len(await resp.read_chunk())
        await asyncio.sleep(0.5)  # the reader lags: reading must stop, the server must block
        assert written[0] < total // 2, "the client kept reading for a reader that did not"
        while chunk := await resp.read_chunk():
            got += len(chunk)
        assert got == total
        resp.release()
        assert c.connections_opened == 1 and c.idle_connections == 1
        await c.close()
        await srv.stop()

    run(main())


def test_cancelled_request_closes_its_connection(run: Run) -> None:
    closed = asyncio.Event

    async def main() -> None:
        seen_eof = closed()

        async def handler(peer: Peer) -> None:
            await peer.request()
            await peer.reader.read()  # returns at EOF: the client closed
            seen_eof.set()

        srv = await Server(handler).start()
        c = client(srv)
        task = asyncio.create_task(c.request("POST", "/x", [], b"{}"))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(seen_eof.wait(), 2)
        assert c.open_connections == 0
        await srv.stop()

    run(main())


def test_unread_body_closes_instead_of_pooling(run: Run) -> None:
    async def main() -> None:
        srv = await Server(serve_each(lambda r: ok(b"x" * 1000))).start()
        c = client(srv)
        resp = await c.request("GET", "/x", [])
        resp.release()  # the body was never read: the connection cannot be reused
        assert c.open_connections == 0
        async with await c.request("GET", "/x", []) as resp:
            assert len(await resp.read()) == 1000
        assert c.connections_opened == 2
        await c.close()
        await srv.stop()

    run(main())


def test_pool_size_bounds_connections(run: Run) -> None:
    active = [0, 0]  # now, max

    async def handler(peer: Peer) -> None:
        while await peer.request() is not None:
            active[0] += 1
            active[1] = max(active[1], active[0])
            await asyncio.sleep(0.05)
            active[0] -= 1
            await peer.send(ok(b"{}"))

    async def one(c: HTTPClient) -> bytes:
        async with await c.request("POST", "/x", [], b"{}") as resp:
            return await resp.read()

    async def main() -> None:
        srv = await Server(handler).start()
        c = client(srv, pool_size=2)
        assert await asyncio.gather(*(one(c) for _ in range(10))) == [b"{}"] * 10
        assert active[1] == 2
        assert len(srv.peers) == 2
        await c.close()
        await srv.stop()

    run(main())


def test_connection_lost_before_answer_frees_the_pool_slot(run: Run) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        peer.writer.transport.abort()

    async def main() -> None:
        srv = await Server(handler).start()
        c = client(srv, pool_size=1)
        for _ in range(3):  # each failure gives its slot back, or the third would wait forever
            with pytest.raises(ConnectionBroken):
                await c.request("POST", "/x", [], b"{}")
        assert c.open_connections == 0
        await srv.stop()

    run(main())


def test_invalid_http_is_a_broken_connection(run: Run) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")

    async def main() -> None:
        srv = await Server(handler).start()
        c = client(srv)
        with pytest.raises(ConnectionBroken, match="invalid HTTP"):
            await c.request("GET", "/x", [])
        await srv.stop()

    run(main())


def test_header_injection_refused() -> None:
    c = HTTPClient("http://127.0.0.1:1", pool_size=1, connect_timeout_s=1, read_timeout_s=1)
    with pytest.raises(ValueError, match="CR or LF"):
        asyncio.run(c.request("GET", "/x", [("X-A", "v\r\nX-Injected: 1")]))
    with pytest.raises(ValueError, match="CR or LF"):
        asyncio.run(c.request("GET", "/x HTTP/1.1\r\nX-Injected: 1\r\n", []))


@pytest.fixture(scope="module")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls(run: Run, tls_cert: tuple[Path, Path]) -> None:
    cert, key = tls_cert
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def main() -> None:
        srv = await Server(serve_each(lambda r: ok(b"secret " + r.body)), ssl_context=server_ctx).start()
        trusting = ssl.create_default_context(cafile=str(cert))
        c = client(srv, ssl_context=trusting)
        for _ in range(2):
            async with await c.request("POST", "/x", [], b"hi") as resp:
                assert await resp.read() == b"secret hi"
        assert c.connections_opened == 1
        await c.close()
        # The default context (system CAs) does not trust a self-signed certificate.
        with pytest.raises(ConnectFailed):
            await client(srv).request("POST", "/x", [], b"hi")
        await srv.stop()

    run(main())


def test_errors_share_one_base() -> None:
    for cls in (ConnectFailed, ConnectTimeout, ReadTimeout, ConnectionBroken):
        assert issubclass(cls, HTTPClientError)
    with pytest.raises(ValueError, match="http"):
        HTTPClient("ftp://x", pool_size=1, connect_timeout_s=1, read_timeout_s=1)


def test_read_nowait_and_body_done(run: Run) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
        await asyncio.sleep(0.1)
        await peer.send(b"01234")
        await asyncio.sleep(0.1)
        await peer.send(b"56789")

    async def main() -> None:
        srv = await Server(handler).start()
        c = client(srv)
        resp = await c.request("GET", "/x", [])
        assert resp.read_nowait() == b""  # nothing of the body yet: no waiting either
        assert not resp.body_done
        await asyncio.sleep(0.15)
        assert resp.read_nowait() == b"01234"
        assert not resp.body_done
        assert await resp.read_chunk() == b"56789"
        assert resp.body_done
        assert await resp.read_chunk() == b""
        resp.release()
        assert c.idle_connections == 1
        await c.close()
        await srv.stop()

    run(main())


def test_names_resolved_once_and_every_address_tried() -> None:
    async def main() -> None:
        srv = await Server(serve_each(lambda r: ok(b"{}"))).start()
        loop = asyncio.get_running_loop()
        lookups: list[str] = []
        real = loop.getaddrinfo

        async def counting(host: Any, *args: Any, **kw: Any) -> Any:
            lookups.append(host)
            return await real(host, *args, **kw)

        loop.getaddrinfo = counting  # type: ignore[method-assign]
        c = HTTPClient(f"http://localhost:{srv.port}", pool_size=4, connect_timeout_s=2, read_timeout_s=2)

        async def one() -> bytes:
            async with await c.request("POST", "/x", [], b"{}") as resp:
                return await resp.read()

        assert await asyncio.gather(*(one() for _ in range(4))) == [b"{}"] * 4
        assert c.connections_opened >= 2
        assert len(lookups) <= 2 and lookups[0] == "localhost"  # not one lookup per connection
        await c.close()

        # An address that refuses is skipped for the next one.
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        dead_port = dead.getsockname()[1]
        dead.close()
        c = HTTPClient(f"http://localhost:{srv.port}", pool_size=4, connect_timeout_s=2, read_timeout_s=2)
        c._addresses = [(socket.AF_INET, ("127.0.0.1", dead_port)), (socket.AF_INET, ("127.0.0.1", srv.port))]
        c._addresses_until = loop.time() + 60
        assert await one() == b"{}"
        await c.close()
        await srv.stop()

    asyncio.run(main())


def test_unresolvable_name(run: Run) -> None:
    async def main() -> None:
        c = HTTPClient("http://no-such-host.invalid", pool_size=1, connect_timeout_s=5, read_timeout_s=1)
        with pytest.raises(ConnectFailed, match=r"cannot connect to http://no-such-host\.invalid"):
            await c.request("GET", "/x", [])
        assert c.open_connections == 0

    run(main())
