"""The real broker: per-key order over 10,000 keyed events, and idempotent topic creation."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from services.common.topics import Topics, ensure_topics

N_EVENTS = 10_000
N_KEYS = 97


async def test_ensure_topics_is_idempotent(kafka_bootstrap: str, topic_prefix: str) -> None:
    names = Topics.with_prefix(topic_prefix).all()
    created = await ensure_topics(kafka_bootstrap, names, partitions=3)
    assert sorted(created) == sorted(names)
    assert await ensure_topics(kafka_bootstrap, names, partitions=3) == []
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([names[0]])
        assert len(described[0]["partitions"]) == 3
    finally:
        await admin.close()


async def test_keyed_events_come_back_in_per_key_order(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}order"
    await ensure_topics(kafka_bootstrap, [topic], partitions=12)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, key=f"k{i % N_KEYS}".encode(), value=str(i).encode()) for i in range(N_EVENTS)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"{topic_prefix}g",
    )
    await consumer.start()
    seen: dict[bytes, list[int]] = defaultdict(list)
    partitions_of: dict[bytes, set[int]] = defaultdict(set)
    total = 0
    try:
        async with asyncio.timeout(60):
            while total < N_EVENTS:
                batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
                for tp, records in batch.items():
                    for r in records:
                        assert r.key is not None and r.value is not None
                        seen[r.key].append(int(r.value))
                        partitions_of[r.key].add(tp.partition)
                        total += 1
    finally:
        await consumer.stop()
    assert total == N_EVENTS
    assert len(seen) == N_KEYS
    for key, values in seen.items():
        assert values == sorted(values), f"{key!r} out of order"
        assert len(partitions_of[key]) == 1
    assert sum(len(v) for v in seen.values()) == N_EVENTS
