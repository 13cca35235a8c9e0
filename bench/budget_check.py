"""Server-side latency of GET /v1/budget-check (answered from the gateway's local state).

Builds the real gateway app (no broker needed: the check never leaves the process), fills
its session replica with --sessions folded states, and times the handler itself over
--requests mocked requests (auth, lookup, local corrections, JSON); then times full HTTP
round trips on loopback for context.

    .venv/bin/python bench/budget_check.py --sessions 100000 --requests 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import ClientSession, web  # noqa: E402
from aiohttp.test_utils import make_mocked_request  # noqa: E402

from services.common.events import CallFinished, CallStarted  # noqa: E402
from services.common.session_state import encode_state, fold  # noqa: E402
from services.gateway import keys  # noqa: E402
from services.gateway.app import create_app  # noqa: E402
from services.gateway.config import GatewaySettings  # noqa: E402
from services.gateway.routes_budget import budget_check  # noqa: E402


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def fill(app: web.Application, sessions: int) -> None:
    replica = app[keys.REPLICA]
    for i in range(sessions):
        common = {"tenant": "alpha", "session_id": f"s{i}", "provider": "openai", "endpoint": "chat"}
        state = None
        for c in range(3):
            state, _ = fold(
                state, CallStarted(**common, call_id=f"c{c}", reserved_usd=Decimal("0.1"), budget_usd=Decimal("5"))
            )  # type: ignore[arg-type]
            state, _ = fold(state, CallFinished(**common, call_id=f"c{c}", status_code=200, cost_usd=Decimal("0.05")))  # type: ignore[arg-type]
        assert state is not None
        replica._states[f"alpha/s{i}".encode()] = encode_state(state)  # the replica keeps encoded states


async def main(args: argparse.Namespace) -> None:
    settings = GatewaySettings(tenant_token_map={"tok-alpha": "alpha"}, kafka_bootstrap_servers="127.0.0.1:1", port=0)
    app = create_app(settings)
    fill(app, args.sessions)
    rng = random.Random(1)
    handler_us: list[float] = []
    for _ in range(args.requests):
        sid = f"s{rng.randrange(args.sessions)}"
        req = make_mocked_request(
            "GET", f"/v1/budget-check?session_id={sid}", headers={"Authorization": "Bearer tok-alpha"}, app=app
        )
        t = time.perf_counter()
        resp = await budget_check(req)
        handler_us.append((time.perf_counter() - t) * 1e6)
        assert resp.status == 200, resp.text
    body = json.loads(resp.text or "{}")
    print(
        f"handler (server-side), {args.requests} checks over {args.sessions} sessions: "
        f"p50 {pct(handler_us, 0.5):.1f} us  p99 {pct(handler_us, 0.99):.1f} us  max {max(handler_us):.1f} us"
    )
    print("sample body:", body)

    # Full HTTP round trips on loopback, for context (client and server share this process).
    runner = web.AppRunner(web.Application())
    inner = web.Application()
    inner[keys.AUTH] = app[keys.AUTH]
    inner[keys.BUDGET] = app[keys.BUDGET]
    inner.router.add_get("/v1/budget-check", budget_check)
    runner = web.AppRunner(inner)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rtt_us: list[float] = []
    async with ClientSession() as http:
        for _ in range(min(args.requests, 5000)):
            sid = f"s{rng.randrange(args.sessions)}"
            t = time.perf_counter()
            async with http.get(
                f"http://127.0.0.1:{port}/v1/budget-check?session_id={sid}",
                headers={"Authorization": "Bearer tok-alpha"},
            ) as r:
                await r.read()
            rtt_us.append((time.perf_counter() - t) * 1e6)
    await runner.cleanup()
    print(f"HTTP round trip (loopback, same process): p50 {pct(rtt_us, 0.5):.0f} us  p99 {pct(rtt_us, 0.99):.0f} us")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=20_000)
    asyncio.run(main(p.parse_args()))
