"""The risk worker against a real broker: outputs, commits, and a broker outage mid-batch."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.anomaly.risk.errors import NextHopUnavailable
from services.anomaly.risk.scanner import Scanner
from services.anomaly.risk.settings import RiskSettings
from services.anomaly.risk.worker import RiskWorker
from services.common.events import Alert, PayloadCaptured, RiskFinding, decode, encode
from services.common.topics import Topics, ensure_topics

AWS = "AKIAZ3MQX7RT2WLE5YQN"


def _payload(i: int, content: str) -> PayloadCaptured:
    return PayloadCaptured(
        tenant="acme",
        session_id=f"s{i % 3}",
        call_id=f"call-{i}",
        provider="openai",
        endpoint="chat/completions",
        request_body=json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}),
        response_body=json.dumps({"choices": [{"message": {"role": "assistant", "content": "ok"}}]}),
    )


def _settings(bootstrap: str, prefix: str, **kw: Any) -> RiskSettings:
    return RiskSettings(
        kafka_bootstrap_servers=bootstrap, topic_prefix=prefix, risk_group_id=f"{prefix}risk", risk_poll_ms=200, **kw
    )


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(topic, v, key=b"acme/s")
    finally:
        await producer.stop()


async def _drain(bootstrap: str, topics: list[str], until: dict[str, int], limit_s: float = 60) -> dict[str, list[Any]]:
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    got: dict[str, list[Any]] = defaultdict(list)
    try:
        async with asyncio.timeout(limit_s):
            while any(len(got[t]) < n for t, n in until.items()):
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    got[tp.topic].extend(decode(r.value) for r in records)
        # A short extra poll: anything beyond the expected count would be a duplicate.
        for tp, records in (await consumer.getmany(timeout_ms=1500)).items():
            got[tp.topic].extend(decode(r.value) for r in records)
    finally:
        await consumer.stop()
    return got


async def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return sum([(await consumer.committed(TopicPartition(topic, p))) or 0 for p in range(partitions)])
    finally:
        await consumer.stop()


async def _run_worker(worker: RiskWorker, stop: asyncio.Event) -> None:
    consumer, producer = worker.consumer(), worker.producer()
    await producer.start()
    await consumer.start()
    try:
        await worker.run(consumer, producer, stop)
    finally:
        await consumer.stop()
        await producer.stop()


async def test_worker_emits_findings_redacted_payloads_and_one_alert(kafka_bootstrap: str, topic_prefix: str) -> None:
    settings = _settings(kafka_bootstrap, topic_prefix)
    topics = Topics.from_settings(settings)
    await ensure_topics(kafka_bootstrap, topics.all(), partitions=2)
    await _produce(
        kafka_bootstrap,
        topics.payloads,
        [
            encode(_payload(0, f"deploy with {AWS} please")),
            encode(_payload(1, "nothing to see here")),
            b"not an event",
            encode(_payload(2, "card 4539 1488 0343 6467, mail jane@example.org")),
        ],
    )
    worker = RiskWorker(settings, Scanner())
    stop = asyncio.Event()
    task = asyncio.create_task(_run_worker(worker, stop))
    try:
        got = await _drain(
            kafka_bootstrap,
            [topics.risk_findings, topics.payloads_redacted, topics.alerts],
            {topics.risk_findings: 3, topics.payloads_redacted: 3, topics.alerts: 1},
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    findings = got[topics.risk_findings]
    assert all(isinstance(f, RiskFinding) for f in findings)
    assert sorted((f.call_id, f.finding_type) for f in findings) == [
        ("call-0", "aws_access_key"),
        ("call-2", "credit_card"),
        ("call-2", "email"),
    ]
    alerts = got[topics.alerts]
    assert len(alerts) == 1 and isinstance(alerts[0], Alert) and alerts[0].severity == "high"
    stored = {p.call_id: p for p in got[topics.payloads_redacted] if isinstance(p, PayloadCaptured)}
    assert set(stored) == {"call-0", "call-1", "call-2"} and all(p.redacted for p in stored.values())
    assert AWS not in stored["call-0"].request_body and "[REDACTED:aws_access_key]" in stored["call-0"].request_body
    assert "4539" not in stored["call-2"].request_body and "jane@example.org" in stored["call-2"].request_body
    assert worker.skipped == 1 and worker.scanned == 3
    assert await _committed(kafka_bootstrap, settings.risk_group_id, topics.payloads, 2) == 4


@pytest.mark.timeout(300)
async def test_broker_down_mid_batch_loses_nothing(own_kafka: Any, topic_prefix: str) -> None:
    """The batch is read, the broker dies before its outputs are produced: nothing is committed,
    and after the restart the batch is scanned again and every output appears (same ids)."""
    bootstrap = own_kafka.bootstrap
    settings = _settings(bootstrap, topic_prefix, risk_produce_timeout_s=3.0)
    topics = Topics.from_settings(settings)
    await ensure_topics(bootstrap, topics.all(), partitions=1)
    n = 5
    await _produce(bootstrap, topics.payloads, [encode(_payload(i, f"key {AWS} #{i}")) for i in range(n)])

    worker = RiskWorker(settings, Scanner())
    consumer, producer = worker.consumer(), worker.producer()
    await producer.start()
    await consumer.start()
    consumer.subscribe([topics.payloads])
    batch: dict[TopicPartition, list[Any]] = {}
    async with asyncio.timeout(60):
        while sum(len(r) for r in batch.values()) < n:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                batch.setdefault(tp, []).extend(records)
    await asyncio.to_thread(own_kafka.stop)
    with pytest.raises(NextHopUnavailable):
        await worker.process(batch, consumer, producer)
    await asyncio.to_thread(own_kafka.start)
    # Closed only once the broker is back: closing against a dead broker just waits out its timeouts.
    await consumer.stop()
    await producer.stop()
    assert await _committed(bootstrap, settings.risk_group_id, topics.payloads, 1) == 0
    stop = asyncio.Event()
    task = asyncio.create_task(_run_worker(RiskWorker(settings, Scanner()), stop))
    try:
        got = await _drain(
            bootstrap, [topics.payloads_redacted, topics.alerts], {topics.payloads_redacted: n, topics.alerts: n}
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    ids = {e.event_id for e in got[topics.payloads_redacted]}
    assert {e.call_id for e in got[topics.payloads_redacted]} == {f"call-{i}" for i in range(n)}
    # Anything produced before the outage carries the same event id as its rescan: stores dedupe on it.
    assert len(ids) == n
    assert len({a.alert_id for a in got[topics.alerts]}) == n
    assert await _committed(bootstrap, settings.risk_group_id, topics.payloads, 1) == n
