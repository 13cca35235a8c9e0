"""The sink as a process (``agentwatch sink``) for the outage tests: start, wait, query, check."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from aiohttp import web

from services.sink.app import create_app
from services.sink.settings import SinkSettings
from tests.integration.sink_helpers import Expected


def sink_env(bootstrap: str, database_url: str, tmp_root: Path, unique: str, port: int, **extra: str) -> dict[str, str]:
    """The environment of a sink process of the test's own: topics, groups, databases and port."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": database_url,
        "CLICKHOUSE_URL": f"chdb://{tmp_root / ('chdb-' + unique)}",
        "AGENTWATCH_CLICKHOUSE_DATABASE": unique,
        "AGENTWATCH_TOPIC_PREFIX": f"{unique}.",
        "AGENTWATCH_GROUP_PREFIX": f"{unique}-",
        "AGENTWATCH_TOPIC_PARTITIONS": "4",
        "AGENTWATCH_SINK_PORT": str(port),
        **extra,
    }


@contextlib.asynccontextmanager
async def sink_app(settings: SinkSettings) -> AsyncIterator[str]:
    """The sink's application in this process, on a free loopback port; yields its base URL."""
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def start_sink(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    agentwatch = Path(sys.executable).parent / "agentwatch"
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(agentwatch), "sink"], env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


async def wait_healthy(http: aiohttp.ClientSession, base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"sink exited, see {log}"
        try:
            async with http.get(f"{base}/healthz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.3)
    raise AssertionError(f"sink not healthy, see {log}")


async def pg_count(url: str) -> int:
    try:
        async with await psycopg.AsyncConnection.connect(url, connect_timeout=2) as conn:
            row = await (await conn.execute("SELECT count(*) FROM llm_calls")).fetchone()
            return int(row[0]) if row else 0
    except psycopg.Error:
        return -1


async def ch_rows(http: aiohttp.ClientSession, base: str, sql: str) -> list[Any]:
    async with http.post(f"{base}/query", json={"sql": sql}) as resp:
        body = await resp.json()
        assert resp.status == 200, body
        rows: list[Any] = body["rows"]
        return rows


async def wait_for(pred: Callable[[], Awaitable[bool]], limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if await pred():
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


async def assert_both_stores_exact(http: aiohttp.ClientSession, base: str, pg_url: str, expected: Expected) -> None:
    """Counts, token sums and cost sums to the micro-dollar, base tables, session totals and rollups."""
    async with await psycopg.AsyncConnection.connect(pg_url) as conn:
        cur = await conn.execute(
            "SELECT count(*), sum(prompt_tokens), sum(completion_tokens), sum(cost_usd) FROM llm_calls"
        )
        assert await cur.fetchone() == (
            expected.calls,
            expected.prompt_tokens,
            expected.completion_tokens,
            expected.cost_usd,
        )
        cur = await conn.execute("SELECT count(*), sum(calls), sum(prompt_tokens), sum(cost_usd) FROM sessions")
        assert await cur.fetchone() == (
            len(expected.sessions),
            expected.calls,
            expected.prompt_tokens,
            expected.cost_usd,
        )
        cur = await conn.execute("SELECT (SELECT count(*) FROM alerts), (SELECT count(*) FROM risk_findings)")
        assert await cur.fetchone() == (expected.alerts, expected.findings)
    [ch] = await ch_rows(
        http,
        base,
        "SELECT count(), sum(prompt_tokens), sum(completion_tokens), toString(sum(cost_usd)) FROM llm_calls",
    )
    assert ch == [expected.calls, expected.prompt_tokens, expected.completion_tokens, str(expected.cost_usd)]
    [rollups] = await ch_rows(
        http,
        base,
        "SELECT (SELECT sum(calls) FROM spend_daily), (SELECT toString(sum(cost_usd)) FROM spend_daily),"
        " (SELECT sum(calls) FROM session_totals), (SELECT toString(sum(cost_usd)) FROM session_totals)",
    )
    assert rollups == [expected.calls, str(expected.cost_usd), expected.calls, str(expected.cost_usd)]
    [(alerts, findings)] = await ch_rows(
        http, base, "SELECT (SELECT count() FROM alerts), (SELECT count() FROM risk_findings)"
    )
    assert (alerts, findings) == (expected.alerts, expected.findings)
