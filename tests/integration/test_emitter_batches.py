"""The emitter against a real broker: per-partition batches land where ``send()`` would put
them (co-partitioning with other producers of the same keys), and a spool left by an outage
drains while steady traffic goes on, every record exactly once and in per-key order."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from services.gateway.emitter import Emitter
from services.gateway.metrics import GatewayMetrics
from services.gateway.spool import Record, Spool

KEYS = [f"tenant/s{i}".encode() for i in range(10)]


async def _read_all(
    bootstrap: str, topic: str, expected: int, within_s: float
) -> tuple[list[int], list[tuple[int, bytes, bytes]]]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[tuple[int, bytes, bytes]] = []
        deadline = time.monotonic() + within_s
        while len(out) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for tp, records in batches.items():
                out.extend((tp.partition, r.key or b"", r.value or b"") for r in records)
        return partitions, out
    finally:
        await consumer.stop()


async def test_spool_drains_under_steady_traffic_in_order(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topic = f"{topic_prefix}calls"
    spool = Spool(tmp_path / "spool", 1 << 24)
    # What an outage left behind: the gateway restarts with these on disk.
    old = [Record(topic, KEYS[i % len(KEYS)], f"old-{i}".encode()) for i in range(300)]
    assert spool.append(old) == len(old)
    emitter = Emitter(
        kafka_bootstrap,
        spool,
        GatewayMetrics.create(),
        queue_size=50_000,
        send_timeout_s=5.0,
        topics_to_ensure=(topic,),
    )
    await emitter.start()
    new: list[Record] = []
    drained_during_traffic = False
    try:
        # About 2,000 records a second for 4 s: the spool must empty while this goes on.
        for step in range(200):
            for j in range(40):
                n = step * 40 + j
                rec = Record(topic, KEYS[n % len(KEYS)], f"new-{n}".encode())
                new.append(rec)
                emitter.emit_raw(rec)
            await asyncio.sleep(0.02)
            if step > 20 and emitter.spool_size == 0 and emitter.broker_up:
                drained_during_traffic = True
    finally:
        await emitter.stop()
    assert drained_during_traffic, "the spool never emptied while traffic went on"
    assert spool.empty()

    partitions, got = await _read_all(kafka_bootstrap, topic, len(old) + len(new), 60.0)
    assert len(partitions) == 12
    values = [v for _, _, v in got]
    assert sorted(values) == sorted(r.value for r in old + new)  # each exactly once
    for key in KEYS:
        in_log = [v for _, k, v in got if k == key]
        sent = [r.value for r in old + new if r.key == key]
        assert in_log == sent  # per-key order: the spooled records first, then the new ones
        where = {p for p, k, _ in got if k == key}
        assert where == {DefaultPartitioner()(key, partitions, partitions)}
