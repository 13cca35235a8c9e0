"""Server-side latency of GET /v1/budget-check (answered from the gateway's local state).

Builds the real gateway app (no broker needed: the check never leaves the process), fills
its session replica with --sessions folded states (and marks it caught up, as a started
replica would be once it read the changelog: otherwise every view says "state unknown"),
and times the handler itself over --requests mocked requests (auth, lookup, local
corrections, JSON); then times full HTTP round trips on loopback for context.

With --under-load RATE the same app is started for real in this process (emitter, replica,
strict client on the broker of KAFKA_BOOTSTRAP_SERVERS, fake upstream in its own process)
and serves proxied calls at RATE/s over the filled sessions from the Go load generator, while
a second load generator sends --check-rate budget-checks/s: a middleware times the
budget-check handler inside the busy gateway, and the load generator reports the checks'
round trips (which include waiting for the event loop behind the proxied calls).

    .venv/bin/python bench/budget_check.py --sessions 100000 --requests 20000
    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python bench/budget_check.py --under-load 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import compare  # noqa: E402
import uvloop  # noqa: E402
from aiohttp import ClientSession, web  # noqa: E402
from aiohttp.test_utils import make_mocked_request  # noqa: E402

from services.common.events import CallFinished, CallStarted  # noqa: E402
from services.common.session_state import changelog_topic, encode_state, fold  # noqa: E402
from services.common.topics import Topics, ensure_topics  # noqa: E402
from services.gateway import keys  # noqa: E402
from services.gateway.app import create_app  # noqa: E402
from services.gateway.config import GatewaySettings  # noqa: E402
from services.gateway.routes_budget import budget_check  # noqa: E402
from services.gateway.runner import tune_gc  # noqa: E402


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
    if args.under_load:
        await under_load(args)
        return
    settings = GatewaySettings(tenant_token_map={"tok-alpha": "alpha"}, kafka_bootstrap_servers="127.0.0.1:1", port=0)
    app = create_app(settings)
    fill(app, args.sessions)
    app[keys.REPLICA]._ready.set()  # filled as if the changelog had been read
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


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def under_load(args: argparse.Namespace) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    prefix = f"bcheck{uuid.uuid4().hex[:8]}."
    topics = Topics.with_prefix(prefix)
    # The changelog exists (empty) so the replica gets ready; the proxied calls' sessions
    # are then put in it directly.
    await ensure_topics(bootstrap, [changelog_topic(prefix)], configs={"cleanup.policy": "compact"})
    await ensure_topics(bootstrap, [topics.calls, topics.payloads, topics.reservations, topics.reservation_decisions])
    work = Path(tempfile.mkdtemp(prefix="aw-bench-bcheck-"))
    with ExitStack() as stack:
        upstream = compare.start_upstream(stack, work, args.upstream_ms)
        settings = GatewaySettings(
            tenant_token_map={"tok-alpha": "alpha"},
            kafka_bootstrap_servers=bootstrap,
            topic_prefix=prefix,
            openai_base_url=upstream,
            openai_api_key="sk-bench",
            spool_dir=work / "spool",
            port=0,
        )
        app = create_app(settings)
        handler_us: list[float] = []

        @web.middleware
        async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path != "/v1/budget-check":
                return await handler(request)
            t = time.perf_counter()
            resp = await handler(request)
            handler_us.append((time.perf_counter() - t) * 1e6)
            return resp

        app.middlewares.append(timed)
        # As `agentwatch gateway` runs it (services/gateway/runner.py): no access log, uvloop
        # (see __main__), the collector tuned once the app is built.
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            assert await app[keys.REPLICA].wait_ready(60), "replica never ready"
            fill(app, args.sessions)
            tune_gc()
            base = f"http://127.0.0.1:{port}"
            body = work / "body.json"
            body.write_text(json.dumps(compare.BODY))
            calls = compare.Target(
                "calls",
                f"{base}/v1/proxy/openai/chat/completions",
                ["Authorization: Bearer tok-alpha", "Content-Type: application/json"],
                vary_header="X-AgentWatch-Session-Id: s%d",
            )
            checks = compare.Target(
                "checks", f"{base}/v1/budget-check?session_id=s42", ["Authorization: Bearer tok-alpha"]
            )
            loadgen = compare.build_loadgen()
            empty = work / "empty"
            empty.write_bytes(b"")
            idle = await asyncio.to_thread(check_load, loadgen, checks, empty, args.check_rate, args.seconds)
            idle_handler, handler_us[:] = list(handler_us), []
            print(f"load average before: {os.getloadavg()}", flush=True)
            busy_calls, busy = await asyncio.gather(
                asyncio.to_thread(
                    compare.run_load,
                    loadgen,
                    calls,
                    body,
                    rate=args.under_load,
                    seconds=args.seconds,
                    vary_count=args.sessions,
                ),
                asyncio.to_thread(check_load, loadgen, checks, empty, args.check_rate, args.seconds),
            )
            print(f"load average after: {os.getloadavg()}")
            for label, handler_sample, rtt in (("idle", idle_handler, idle), ("under load", handler_us, busy)):
                lat = rtt["latency_ms"]
                print(
                    f"budget-check {label}: handler p50 {pct(handler_sample, 0.5):.1f} us  "
                    f"p99 {pct(handler_sample, 0.99):.1f} us  max {max(handler_sample):.1f} us "
                    f"({len(handler_sample)} checks); round trip p50 {lat['p50']:.2f} ms  p99 {lat['p99']:.2f} ms"
                )
            lat = busy_calls["latency_ms"]
            print(
                f"proxied calls meanwhile: {busy_calls['ok']} ok of {busy_calls['sent']} at "
                f"{busy_calls['achieved_rps']:.0f}/s (target {args.under_load}/s), p50 {lat['p50']:.2f} ms  "
                f"p99 {lat['p99']:.2f} ms"
            )
        finally:
            await runner.cleanup()


def check_load(loadgen: Path, target: compare.Target, body: Path, rate: float, seconds: float) -> dict[str, Any]:
    args = [str(loadgen), "-url", target.url, "-method", "GET", "-body", str(body), "-rate", str(rate)]
    args += ["-duration", f"{seconds}s", "-connections", "20", "-warmup", "0s", "-timeout", "30s"]
    for h in target.headers:
        args += ["-H", h]
    r = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, check=True)
    result: dict[str, Any] = json.loads(r.stdout)
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--under-load", type=float, default=0, help="proxied calls per second meanwhile (0: handler only)")
    p.add_argument("--check-rate", type=float, default=200, help="budget-checks per second under load")
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--upstream-ms", type=float, default=0, help="fake upstream latency")
    parsed = p.parse_args()
    if parsed.under_load:
        uvloop.run(main(parsed))
    else:
        asyncio.run(main(parsed))
