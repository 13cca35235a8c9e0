"""Latency the gateway adds, and its maximum throughput, against direct calls to the fake
upstream (each in its own process).

Open loop at a fixed rate: request i is due at ``t0 + i/rate`` and its latency is measured
from that scheduled time, so a slow server cannot hide queueing (no coordinated omission).
Then a closed loop with fixed concurrency measures the maximum throughput. Bounded: about
40 s with the defaults.

    .venv/bin/python bench/gateway_overhead.py [--rate 500] [--seconds 10] [--kafka 127.0.0.1:9092]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e import procs  # noqa: E402

BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}).encode()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


async def open_loop(url: str, headers: dict[str, str], rate: float, seconds: float) -> tuple[list[float], int]:
    n = int(rate * seconds)
    lat: list[float] = []
    errors = 0
    # A bounded pool, like a real client: requests beyond it queue (and that time counts).
    conn = aiohttp.TCPConnector(limit=64, keepalive_timeout=30)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def one(due: float) -> None:
            nonlocal errors
            try:
                async with s.post(url, data=BODY, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
            lat.append((time.perf_counter() - due) * 1000)

        tasks = []
        t0 = time.perf_counter() + 0.05
        for i in range(n):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(due)))
        await asyncio.gather(*tasks)
    return lat, errors


async def closed_loop(url: str, headers: dict[str, str], concurrency: int, seconds: float) -> float:
    done = 0
    stop = time.perf_counter() + seconds
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                async with s.post(url, data=BODY, headers=headers) as r:
                    await r.read()
                done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - t0)


async def bench(args: argparse.Namespace, fake: procs.ServiceProcess, gw: procs.ServiceProcess) -> dict[str, object]:
    direct = (
        f"{fake.url}/v1/chat/completions",
        {"Authorization": "Bearer sk-direct", "Content-Type": "application/json"},
    )
    via = (
        f"{gw.url}/v1/proxy/openai/chat/completions",
        {"Authorization": "Bearer tok-bench", "Content-Type": "application/json", "X-AgentWatch-Session-Id": "bench"},
    )
    out: dict[str, object] = {}
    for name, (url, headers) in (("direct", direct), ("gateway", via)):
        await open_loop(url, headers, args.rate, 1.5)  # warm-up: connections, caches
        lat, errors = await open_loop(url, headers, args.rate, args.seconds)
        out[name] = {"n": len(lat), "errors": errors, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99)}
    for name, (url, headers) in (("direct", direct), ("gateway", via)):
        out[f"{name}_max_rps"] = await closed_loop(url, headers, args.concurrency, args.throughput_seconds)
    d, g = out["direct"], out["gateway"]
    assert isinstance(d, dict) and isinstance(g, dict)
    out["added_p50_ms"] = g["p50_ms"] - d["p50_ms"]
    out["added_p99_ms"] = g["p99_ms"] - d["p99_ms"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--throughput-seconds", type=float, default=5.0)
    parser.add_argument("--kafka", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="aw-bench-"))
    fake = procs.fake_upstream(procs.free_port(), logs, record=False).start()
    gw = procs.gateway(
        procs.free_port(),
        logs,
        {
            "KAFKA_BOOTSTRAP_SERVERS": args.kafka,
            "AGENTWATCH_TOPIC_PREFIX": f"bench{uuid.uuid4().hex[:6]}.",
            "AGENTWATCH_TOPIC_PARTITIONS": "3",
            "OPENAI_API_KEY": "sk-bench",
            "TENANT_TOKEN_MAP": json.dumps({"tok-bench": "bench"}),
            "AGENTWATCH_OPENAI_BASE_URL": f"{fake.url}/v1",
            "AGENTWATCH_SPOOL_DIR": str(logs / "spool"),
        },
    ).start()
    try:
        result = uvloop.run(bench(args, fake, gw))
    finally:
        gw.stop()
        fake.stop()
    result["machine"] = f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    result["command"] = " ".join(["bench/gateway_overhead.py", *sys.argv[1:]])
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
