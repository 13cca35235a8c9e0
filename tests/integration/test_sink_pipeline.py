"""100,000 events through the real broker land in both stores exactly once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import psycopg

from services.common.topics import Topics
from services.sink.settings import SinkSettings
from tests.integration.sink_helpers import Expected, make_events, produce
from tests.integration.sink_process import ch_rows, sink_app

N_CALLS = 100_000


async def _pg_totals(url: str) -> tuple[Any, ...]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            "SELECT count(*), coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),"
            " coalesce(sum(cost_usd), 0) FROM llm_calls"
        )
        row = await cur.fetchone()
        assert row is not None
        return tuple(row)


async def test_100k_events_land_in_both_stores_exactly_once(
    kafka_bootstrap: str, pg_database: str, clickhouse_url: str, topic_prefix: str, unique: str
) -> None:
    events = make_events(N_CALLS, unique)
    # Some garbage on the calls topic: counted and dead-lettered, never blocking the partition.
    expected = Expected()
    for e in events:
        expected.add(e)
    settings = SinkSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=pg_database,
        clickhouse_url=clickhouse_url,
        clickhouse_database=unique,
        topic_prefix=topic_prefix,
        group_prefix=f"{unique}-",
        topic_partitions=4,
        sink_port=0,
        batch_rows=10_000,
    )
    topics = Topics.from_settings(settings)
    async with sink_app(settings) as base:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        await producer.send_and_wait(topics.calls, b"not an event", key=b"x")
        await producer.send_and_wait(topics.calls, b'{"type": "call_finished", "v": 99}', key=b"x")
        await producer.stop()
        await produce(kafka_bootstrap, events, topics.calls, topics.alerts, topics.risk_findings)
        want = (expected.calls, expected.prompt_tokens, expected.completion_tokens, expected.cost_usd)
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 120
            pg: tuple[Any, ...] = ()
            ch: list[Any] = []
            while time.monotonic() < deadline:
                pg = await _pg_totals(pg_database)
                [ch] = await ch_rows(
                    http,
                    base,
                    "SELECT count(), sum(prompt_tokens), sum(completion_tokens), toString(sum(cost_usd))"
                    " FROM llm_calls",
                )
                if pg[0] >= expected.calls and ch[0] >= expected.calls:
                    break
                await asyncio.sleep(0.5)
            assert pg == want
            assert (ch[0], ch[1], ch[2], ch[3]) == (
                expected.calls,
                expected.prompt_tokens,
                expected.completion_tokens,
                str(expected.cost_usd),
            )
            [rollup] = await ch_rows(http, base, "SELECT sum(calls), toString(sum(cost_usd)) FROM spend_daily")
            assert rollup == [expected.calls, str(expected.cost_usd)]
            async with http.get(f"{base}/healthz") as resp:
                health = await resp.json()
            assert health["consumers"]["postgres"]["bad_records"] == 2
            assert health["consumers"]["clickhouse"]["bad_records"] == 2
            async with http.post(f"{base}/query", data="DROP TABLE llm_calls") as resp:
                assert resp.status == 400
                assert "readonly" in (await resp.json())["error"]["message"].lower()
        async with await psycopg.AsyncConnection.connect(pg_database) as conn:
            cur = await conn.execute("SELECT count(*), sum(calls), sum(cost_usd) FROM sessions")
            assert await cur.fetchone() == (len(expected.sessions), expected.calls, expected.cost_usd)
            # The two garbage records are dead letters, once per store.
            cur = await conn.execute("SELECT store, count(*) FROM sink_dead_letters GROUP BY store ORDER BY store")
            assert await cur.fetchall() == [("clickhouse", 2), ("postgres", 2)]
