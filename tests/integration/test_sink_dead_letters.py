"""Records a store cannot take never block their partition and are never dropped silently.

Undecodable bytes (not JSON, an unknown event type, a newer schema, a tombstone) and events a
store refuses for their data (a cost beyond numeric(20, 9), negative tokens for ClickHouse's
UInt64) sit among good events on the real broker. Each store keeps every good event exactly,
each refused record is one row of ``sink_dead_letters`` per store with its topic, partition,
offset and raw bytes, the counts show in /healthz and /metrics, and both consumer groups
commit to the end of every partition.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.common.events import Alert, CallFinished, Event, encode
from services.common.topics import Topics
from services.sink.dead_letters import DeadLetter, DeadLetterStore
from services.sink.settings import SinkSettings
from tests.integration.sink_helpers import Expected, make_events, produce, topic_of
from tests.integration.sink_process import ch_rows, sink_app


@dataclass(frozen=True)
class Bad:
    """A record produced on purpose, and which stores must refuse it."""

    value: bytes | None
    stores: frozenset[str]
    event: Event | None = None
    topic: str = ""
    partition: int = -1
    offset: int = -1


BOTH = frozenset({"postgres", "clickhouse"})


def _bad_records(tenant: str) -> list[Bad]:
    too_costly = CallFinished(
        tenant=tenant,
        session_id="bad",
        call_id=f"{tenant}-too-costly",
        provider="openai",
        endpoint="chat/completions",
        status_code=200,
        cost_usd=Decimal("1000000000000"),  # 13 integer digits: numeric(20, 9) holds 11
    )
    negative = CallFinished(
        tenant=tenant,
        session_id="bad",
        call_id=f"{tenant}-negative",
        provider="openai",
        endpoint="chat/completions",
        status_code=200,
        input_tokens=-5,  # PostgreSQL's bigint takes it, ClickHouse's UInt64 does not
        cost_usd=Decimal("0.001"),
    )
    alert = Alert(tenant=tenant, session_id="bad", detector="loop", spent_usd=Decimal("1e15"))
    return [
        Bad(b"\x00\x01 not json", BOTH),
        Bad(b'{"type": "call_teleported", "v": 1, "tenant": "t"}', BOTH),
        Bad(encode(too_costly).replace(b'"v":1', b'"v":2'), BOTH),  # a newer schema than this build
        Bad(None, BOTH),
        Bad(encode(too_costly), BOTH, too_costly),
        Bad(encode(negative), frozenset({"clickhouse"}), negative),
        Bad(encode(alert), BOTH, alert),
    ]


async def _produce_bad(bootstrap: str, topics: Topics, bad: list[Bad]) -> list[Bad]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    placed = []
    try:
        for i, b in enumerate(bad):
            topic = topic_of(b.event, topics.calls, topics.alerts, topics.risk_findings) if b.event else topics.calls
            meta = await producer.send_and_wait(topic, b.value, key=f"bad/{i}".encode())
            placed.append(Bad(b.value, b.stores, b.event, meta.topic, meta.partition, meta.offset))
    finally:
        await producer.stop()
    return placed


async def _committed_to_end(bootstrap: str, group: str, names: list[str], partitions: int) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await reader.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        parts = [TopicPartition(t, p) for t in names for p in range(partitions)]
        ends = await reader.end_offsets(parts)
        # A partition nothing was ever written to has no committed offset, and needs none.
        return all((committed[tp].offset if tp in committed else 0) == ends[tp] for tp in parts)
    finally:
        await reader.stop()
        await admin.close()


async def _fetch(url: str, sql: str) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return await (await conn.execute(sql)).fetchall()


async def test_refused_and_undecodable_records_become_dead_letters_and_the_rest_lands(
    kafka_bootstrap: str, pg_database: str, clickhouse_url: str, topic_prefix: str, unique: str
) -> None:
    good = make_events(6000, unique)
    expected = Expected()
    for e in good:
        expected.add(e)
    settings = SinkSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=pg_database,
        clickhouse_url=clickhouse_url,
        clickhouse_database=unique,
        topic_prefix=topic_prefix,
        group_prefix=f"{unique}-",
        topic_partitions=2,
        batch_rows=1000,
        retry_initial_s=0.05,
    )
    topics = Topics.from_settings(settings)
    names = [topics.calls, topics.alerts, topics.risk_findings]
    async with sink_app(settings) as base:
        # The bad records sit between good ones, so whole batches around them must still land.
        await produce(kafka_bootstrap, good[:3000], *names)
        bad = await _produce_bad(kafka_bootstrap, topics, _bad_records(unique))
        await produce(kafka_bootstrap, good[3000:], *names)

        expected_letters = {(b.topic, b.partition, b.offset, store): b for b in bad for store in sorted(b.stores)}
        pg_expected = dataclasses.replace(expected, sessions=set(expected.sessions))
        for b in bad:
            if b.event is not None and "postgres" not in b.stores:
                pg_expected.add(b.event)

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            has_table = await _has_table(pg_database)
            rows = await _fetch(pg_database, "SELECT count(*) FROM sink_dead_letters") if has_table else [(0,)]
            groups_done = all(
                [
                    await _committed_to_end(kafka_bootstrap, f"{unique}-{s}", names, settings.topic_partitions)
                    for s in ("postgres", "clickhouse")
                ]
            )
            if rows[0][0] >= len(expected_letters) and groups_done:
                break
            await asyncio.sleep(0.5)

        letters = await _fetch(
            pg_database,
            'SELECT topic, partition, "offset", store, error, raw_event, event_type, event_id FROM sink_dead_letters',
        )
        assert {(t, p, o, s) for t, p, o, s, *_ in letters} == set(expected_letters)
        for topic, partition, offset, store, error, raw, event_type, event_id in letters:
            b = expected_letters[(topic, partition, offset, store)]
            assert error
            assert (bytes(raw) if raw is not None else None) == b.value
            if b.event is None:
                assert (event_type, event_id) == (None, None)
            else:
                assert (event_type, event_id) == (type(b.event).__struct_config__.tag, b.event.event_id)

        # Every good event landed, exactly; the one only ClickHouse refused is in PostgreSQL.
        [pg] = await _fetch(
            pg_database, "SELECT count(*), sum(prompt_tokens), sum(completion_tokens), sum(cost_usd) FROM llm_calls"
        )
        assert pg == (pg_expected.calls, pg_expected.prompt_tokens, pg_expected.completion_tokens, pg_expected.cost_usd)
        [(alerts,)] = await _fetch(pg_database, "SELECT count(*) FROM alerts")
        assert alerts == expected.alerts
        async with aiohttp.ClientSession() as http:
            [ch] = await ch_rows(
                http,
                base,
                "SELECT count(), sum(prompt_tokens), sum(completion_tokens), toString(sum(cost_usd)) FROM llm_calls",
            )
            assert ch == [expected.calls, expected.prompt_tokens, expected.completion_tokens, str(expected.cost_usd)]
            [rollup] = await ch_rows(http, base, "SELECT sum(calls), toString(sum(cost_usd)) FROM spend_daily")
            assert rollup == [expected.calls, str(expected.cost_usd)]
            [(ch_alerts,)] = await ch_rows(http, base, "SELECT count() FROM alerts")
            assert ch_alerts == expected.alerts

            per_store = {s: sum(1 for k in expected_letters if k[3] == s) for s in ("postgres", "clickhouse")}
            async with http.get(f"{base}/healthz") as resp:
                health = (await resp.json())["consumers"]
            async with http.get(f"{base}/metrics") as resp:
                metrics = await resp.text()
            for store, n in per_store.items():
                assert health[store]["dead_letters"] == n
                assert health[store]["bad_records"] == 4
                assert f'agentwatch_sink_dead_letters_total{{store="{store}"}} {float(n)}' in metrics
                assert health[store]["store_down"] is False

    # A replayed dead letter adds nothing.
    store = DeadLetterStore(pg_database)
    try:
        letter = DeadLetter(bad[0].topic, bad[0].partition, bad[0].offset, "postgres", "again", bad[0].value)
        assert await store.write([letter]) == 0
        assert await store.write([DeadLetter("elsewhere", 0, 1, "postgres", "new", b"x")]) == 1
    finally:
        await store.close()


async def _has_table(url: str) -> bool:
    [(name,)] = await _fetch(url, "SELECT to_regclass('sink_dead_letters')::text")
    return name is not None
