"""A second sink joining the group mid-load: the first flushes and commits on revoke, and the
store still holds every event exactly once."""

from __future__ import annotations

import asyncio
import time

import psycopg

from services.common.topics import Topics, ensure_topics
from services.sink.consumer import StoreConsumer
from services.sink.dead_letters import DeadLetterStore
from services.sink.pg_store import PostgresStore
from services.sink.settings import SinkSettings
from tests.integration.sink_helpers import Expected, make_events, produce


async def _totals(url: str) -> tuple[int, int, object]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        try:
            row = await (
                await conn.execute("SELECT count(*), coalesce(sum(prompt_tokens), 0), sum(cost_usd) FROM llm_calls")
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return (0, 0, None)
        assert row is not None
        return (int(row[0]), int(row[1]), row[2])


async def _until(url: str, rows: int, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    for _ in range(int(limit_s / 0.2) + 1):
        if (await _totals(url))[0] >= rows or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.2)


async def test_rebalance_mid_load_keeps_exactness(
    kafka_bootstrap: str, pg_database: str, topic_prefix: str, unique: str
) -> None:
    settings = SinkSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=pg_database,
        topic_prefix=topic_prefix,
        group_prefix=f"{unique}-",
        batch_rows=2000,
        batch_ms=200,
    )
    topics = Topics.from_settings(settings)
    names = [topics.calls, topics.alerts, topics.risk_findings]
    await ensure_topics(kafka_bootstrap, names, partitions=6)
    events = make_events(30_000, unique)
    expected = Expected()
    for e in events:
        expected.add(e)
    first = StoreConsumer(PostgresStore(settings), settings, names, f"{unique}-pg", DeadLetterStore(pg_database))
    second = StoreConsumer(PostgresStore(settings), settings, names, f"{unique}-pg", DeadLetterStore(pg_database))
    for c in (first, second):
        await c.store.open()
    tasks = [asyncio.create_task(first.run())]
    half = len(events) // 2
    try:
        producing = asyncio.create_task(produce(kafka_bootstrap, events[:half], *names))
        await _until(pg_database, 3000, 60)
        tasks.append(asyncio.create_task(second.run()))
        await producing
        # The second half is produced once the second member owns partitions, so it has work
        # however fast the first one drained the first half (a loaded machine made that flaky).
        for _ in range(300):  # up to 60 s
            if second.assignment():
                break
            await asyncio.sleep(0.2)
        assert second.assignment(), "the second member never joined"
        await produce(kafka_bootstrap, events[half:], *names)
        await _until(pg_database, expected.calls, 90)
        await asyncio.sleep(1)
        assert await _totals(pg_database) == (expected.calls, expected.prompt_tokens, expected.cost_usd)
        # Both members wrote: the partitions really moved.
        assert first.stats.batches > 0 and second.stats.batches > 0
    finally:
        for c in (first, second):
            c.stop()
        await asyncio.gather(*tasks)
        for c in (first, second):
            await c.store.close()
