"""A local Slack incoming-webhook receiver: records what it gets, answers as scripted.

In-process: ``async with SlackReceiver() as r: ... r.url, r.delivered, r.attempts``.
As a process: ``python -m tests.fakes.slack --port 8099``; then ``GET /_messages`` lists the
accepted messages, ``GET /_attempts`` every request, ``POST /_script`` with
``[{"status": 500}, {"status": 429, "retry_after": "1"}]`` sets the next answers (after the
script runs out it answers 200 ``ok``, as Slack does).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Reply:
    status: int = 200
    retry_after: str | None = None
    body: str = "ok"
    delay_s: float = 0.0  # a slow receiver


@dataclass
class Received:
    at: float  # time.monotonic() when it arrived
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class SlackReceiver:
    host: str = "127.0.0.1"
    port: int = 0
    script: list[Reply] = field(default_factory=list)
    attempts: list[Received] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/services/T000/B000/XXXX"

    @property
    def delivered(self) -> list[Received]:
        return [a for a in self.attempts if a.status == 200]

    async def _hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        reply = self.script.pop(0) if self.script else Reply()
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        self.attempts.append(Received(time.monotonic(), reply.status, body, dict(request.headers)))
        self._arrived.set()
        headers = {"Retry-After": reply.retry_after} if reply.retry_after is not None else {}
        return web.Response(status=reply.status, text=reply.body, headers=headers)

    async def _messages(self, request: web.Request) -> web.Response:
        return web.json_response([a.body for a in self.delivered])

    async def _attempts(self, request: web.Request) -> web.Response:
        return web.json_response([{"status": a.status, "body": a.body} for a in self.attempts])

    async def _set_script(self, request: web.Request) -> web.Response:
        self.script = [Reply(**r) for r in await request.json()]
        return web.json_response({"script": len(self.script)})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/_messages", self._messages)
        app.router.add_get("/_attempts", self._attempts)
        app.router.add_post("/_script", self._set_script)
        app.router.add_post("/{tail:.*}", self._hook)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app())
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_for(
        self, count: int, within: float, match: Callable[[Received], bool] | None = None
    ) -> list[Received]:
        """Waits until ``count`` accepted messages (that ``match``) arrived, or the time is up."""
        deadline = time.monotonic() + within

        def got() -> list[Received]:
            return [m for m in self.delivered if match is None or match(m)]

        while len(got()) < count and time.monotonic() < deadline:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                break
        return got()


async def _serve(port: int) -> None:
    receiver = SlackReceiver(port=port)
    await receiver.start()
    print(f"slack receiver on {receiver.url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await receiver.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8099)
    asyncio.run(_serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
