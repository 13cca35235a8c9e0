"""The Kafka broker goes down under a running sink, mid-load, and comes back: the sink process
survives, and both stores end exact (counts, token sums, costs, session totals, rollups).

Events are produced at a steady pace across the outage by a producer that re-sends what the
broker did not acknowledge, so the topics may even hold duplicates: the stores must still
count each call once.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import localstack
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.common.events import Event, encode
from services.common.topics import Topics
from tests.integration.sink_helpers import Expected, make_events, topic_of
from tests.integration.sink_process import (
    assert_both_stores_exact,
    ch_rows,
    pg_count,
    sink_env,
    start_sink,
    wait_for,
    wait_healthy,
)

N_CALLS = 40_000
CHUNK = 500
PACE_S = 0.1  # ~5,000 calls/s: the load is still running when the broker stops
OUTAGE_S = 8.0


async def _produce_through_outage(bootstrap: str, topics: Topics, events: list[Event]) -> int:
    """Send ``events`` in paced chunks; a chunk the broker did not acknowledge is sent again."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, request_timeout_ms=5000)
    await producer.start()
    resent = 0
    try:
        for i in range(0, len(events), CHUNK):
            chunk = events[i : i + CHUNK]
            while True:
                try:
                    futures = [
                        await producer.send(
                            topic_of(e, topics.calls, topics.alerts, topics.risk_findings), encode(e), key=e.key
                        )
                        for e in chunk
                    ]
                    await asyncio.gather(*futures)
                    break
                except KafkaError:
                    resent += 1
                    await asyncio.sleep(0.5)
            await asyncio.sleep(PACE_S)
    finally:
        await producer.stop()
    return resent


async def test_broker_down_mid_load_loses_and_doubles_nothing(
    own_kafka: localstack.Kafka, pg_database: str, tmp_root: Path, unique: str
) -> None:
    events = make_events(N_CALLS, unique)
    expected = Expected()
    for e in events:
        expected.add(e)
    port = localstack.free_port()
    base = f"http://127.0.0.1:{port}"
    topics = Topics.with_prefix(f"{unique}.")
    env = sink_env(
        own_kafka.bootstrap,
        pg_database,
        tmp_root,
        unique,
        port,
        AGENTWATCH_BATCH_ROWS="2000",
        AGENTWATCH_BATCH_MS="200",
    )
    log = tmp_root / f"sink-{unique}.log"
    proc = start_sink(env, log)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            await wait_healthy(http, base, proc, log)
            producing = asyncio.create_task(_produce_through_outage(own_kafka.bootstrap, topics, events))

            async def some_stored() -> bool:
                return await pg_count(pg_database) >= 5000

            await wait_for(some_stored, 60, "the first rows in PostgreSQL")
            await asyncio.to_thread(own_kafka.stop)
            down_at = time.monotonic()
            before = await pg_count(pg_database)
            assert 0 < before < expected.calls, "the load was over before the broker stopped"
            while time.monotonic() - down_at < OUTAGE_S:
                # The sink keeps running and answering while the broker is away.
                assert proc.poll() is None, f"sink exited while the broker was down, see {log}"
                async with http.get(f"{base}/healthz") as resp:
                    assert resp.status == 200
                await asyncio.sleep(1)
            await asyncio.to_thread(own_kafka.start)
            resent = await asyncio.wait_for(producing, 180)

            async def both_complete() -> bool:
                [(n,)] = await ch_rows(http, base, "SELECT count() FROM llm_calls")
                return await pg_count(pg_database) >= expected.calls and n >= expected.calls

            await wait_for(both_complete, 180, "both stores to hold every call")
            await asyncio.sleep(2)  # anything doubled would show up by now
            assert proc.poll() is None, f"sink exited, see {log}"
            await assert_both_stores_exact(http, base, pg_database, expected)
            async with http.get(f"{base}/healthz") as resp:
                health = (await resp.json())["consumers"]
            assert all(health[s]["dead_letters"] == 0 and not health[s]["store_down"] for s in health)
            print(f"chunks re-sent by the producer across the outage: {resent}")
    finally:
        localstack.stop_pid(proc.pid)
