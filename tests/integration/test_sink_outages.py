"""The sink as a process (``agentwatch sink``) through a 60 s PostgreSQL outage and a SIGKILL
mid-batch: both stores still hold every event exactly once, and ClickHouse kept going while
PostgreSQL was down."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from services.common.topics import Topics
from tests.integration.sink_helpers import Expected, make_events, produce
from tests.integration.sink_process import (
    assert_both_stores_exact,
    ch_rows,
    pg_count,
    sink_env,
    start_sink,
    wait_for,
    wait_healthy,
)

ROOT = Path(__file__).resolve().parents[2]
N_CALLS = 100_000
OUTAGE_S = 60.0


async def test_postgres_outage_and_sigkill_lose_and_double_nothing(
    kafka_bootstrap: str, own_postgres, tmp_root: Path, unique: str
) -> None:
    import localstack

    events = make_events(N_CALLS, unique)
    expected = Expected()
    for e in events:
        expected.add(e)
    port = localstack.free_port()
    base = f"http://127.0.0.1:{port}"
    topics = Topics.with_prefix(f"{unique}.")
    env = sink_env(
        kafka_bootstrap,
        own_postgres.url,
        tmp_root,
        unique,
        port,
        AGENTWATCH_BATCH_ROWS="5000",
        AGENTWATCH_RETRY_MAX_S="2",
    )
    log = tmp_root / f"sink-{unique}.log"
    proc = start_sink(env, log)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            await wait_healthy(http, base, proc, log)
            producing = asyncio.create_task(
                produce(kafka_bootstrap, events, topics.calls, topics.alerts, topics.risk_findings)
            )

            async def some_in_pg() -> bool:
                return await pg_count(own_postgres.url) >= 5000

            await wait_for(some_in_pg, 120, "the first rows in PostgreSQL")
            # PostgreSQL goes down mid-load for 60 s.
            before_outage = await pg_count(own_postgres.url)
            await asyncio.to_thread(own_postgres.stop)
            down_at = time.monotonic()
            await producing

            async def ch_complete() -> bool:
                [(n,)] = await ch_rows(http, base, "SELECT count() FROM llm_calls")
                return bool(n >= expected.calls)

            # The other store carries on while PostgreSQL is down.
            await wait_for(ch_complete, OUTAGE_S - 5, "ClickHouse to take every call while PostgreSQL is down")

            # A write in flight when PostgreSQL stopped fails only once its connection attempt
            # times out; on a fast machine ClickHouse is complete before that, so wait for it.
            async def pg_reported_down() -> bool:
                async with http.get(f"{base}/healthz") as resp:
                    health = await resp.json()
                return bool(health["consumers"]["postgres"]["store_down"])

            await wait_for(pg_reported_down, max(5.0, OUTAGE_S - 5 - (time.monotonic() - down_at)), "PostgreSQL down")
            await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
            await asyncio.to_thread(own_postgres.start)

            async def pg_catching_up() -> bool:
                n = await pg_count(own_postgres.url)
                return before_outage + 10_000 < n < expected.calls

            await wait_for(pg_catching_up, 120, "PostgreSQL to catch up")
            # SIGKILL mid-write, then restart: the uncommitted batch is replayed, not doubled.
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            proc = start_sink(env, log)
            await wait_healthy(http, base, proc, log)

            async def pg_complete() -> bool:
                return await pg_count(own_postgres.url) >= expected.calls

            await wait_for(pg_complete, 180, "PostgreSQL to hold every call")
            await asyncio.sleep(2)  # anything doubled would show up by now
            await assert_both_stores_exact(http, base, own_postgres.url, expected)
            # `agentwatch query` / `report` reach the embedded store through the running sink.
            agentwatch = str(Path(sys.executable).parent / "agentwatch")
            out = await asyncio.to_thread(
                subprocess.run,
                [agentwatch, "query", "--format", "json", "SELECT count() AS n, sum(cost_usd) AS usd FROM llm_calls"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout) == [{"n": expected.calls, "usd": str(expected.cost_usd)}]
            out = await asyncio.to_thread(
                subprocess.run,
                [agentwatch, "report", "top_sessions_by_cost", "--format", "json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert out.returncode == 0, out.stderr
            assert len(json.loads(out.stdout)) == 20
            out = await asyncio.to_thread(
                subprocess.run,
                [agentwatch, "query", "ALTER TABLE llm_calls DELETE WHERE 1"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert out.returncode == 1 and "readonly" in out.stderr.lower()
    finally:
        localstack.stop_pid(proc.pid)
