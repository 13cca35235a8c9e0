"""The ``risk-scan`` worker: payloads topic in; findings, redacted payloads and alerts out.

Delivery: at-least-once in, idempotent out. A batch (``getmany``) is scanned, every output is
produced and acknowledged by the broker (idempotent producer, ``acks=all``), and only then
are the batch's offsets committed (``{tp: last.offset + 1}``). If the broker refuses or times
out a produce, nothing is committed: the worker seeks back to the batch's first offsets and
scans it again after a back-off, so nothing is lost. A rescan re-emits the same ids (derived
from the input event), so stores keyed on ``finding_id`` / ``alert_id`` / ``event_id`` keep
one copy. A record that is not a valid event is logged (never its content) and skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from services.anomaly.risk.analyze import analyze
from services.anomaly.risk.errors import NextHopUnavailable
from services.anomaly.risk.scanner import Scanner
from services.anomaly.risk.settings import RiskSettings
from services.anomaly.risk.types import SECRET_TYPES
from services.common.events import EventDecodeError, PayloadCaptured, decode, encode
from services.common.topics import Topics

log = logging.getLogger(__name__)

_RETRY_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)


class _FlushOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """A revoked partition's batch must finish (produce + commit) before another member takes it."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock = lock

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        async with self._lock:
            pass

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        return None


class RiskWorker:
    def __init__(self, settings: RiskSettings, scanner: Scanner) -> None:
        self._settings = settings
        self._scanner = scanner
        self._topics = Topics.from_settings(settings)
        self._redact = SECRET_TYPES | settings.risk_redact_pii
        self._salt = settings.risk_hash_salt.get_secret_value().encode()
        self._lock = asyncio.Lock()
        self.scanned = 0
        self.skipped = 0

    def consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            group_id=self._settings.risk_group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Payloads can be large; a batch must still be produced well within the poll interval.
            max_poll_interval_ms=300_000,
        )

    def producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            max_request_size=8 << 20,
        )

    async def run(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, stop: asyncio.Event) -> None:
        consumer.subscribe([self._topics.payloads], listener=_FlushOnRevoke(self._lock))
        attempt = 0
        while not stop.is_set():
            batch = await consumer.getmany(
                timeout_ms=self._settings.risk_poll_ms, max_records=self._settings.risk_batch_max
            )
            if not batch:
                continue
            try:
                async with self._lock:
                    await self.process(batch, consumer, producer)
                attempt = 0
            except NextHopUnavailable as exc:
                delay = _RETRY_BACKOFF_S[min(attempt, len(_RETRY_BACKOFF_S) - 1)]
                attempt += 1
                log.warning("risk: next hop unavailable (%s); batch not committed, rescanning in %.1fs", exc, delay)
                for tp, records in batch.items():
                    consumer.seek(tp, records[0].offset)
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass

    async def process(
        self, batch: dict[TopicPartition, list[Any]], consumer: AIOKafkaConsumer, producer: AIOKafkaProducer
    ) -> None:
        pending: list[asyncio.Future[Any]] = []
        try:
            for records in batch.values():
                for record in records:
                    for topic, key, value in self._outputs(record):
                        pending.append(await producer.send(topic, value=value, key=key))
            await asyncio.wait_for(asyncio.gather(*pending), self._settings.risk_produce_timeout_s)
        except (KafkaError, TimeoutError) as exc:
            for f in pending:
                f.cancel()
            raise NextHopUnavailable(type(exc).__name__) from exc
        try:
            await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
        except KafkaError as exc:
            # Outputs are out; the batch will be rescanned and re-emitted with the same ids.
            raise NextHopUnavailable(f"commit failed: {type(exc).__name__}") from exc

    def _outputs(self, record: Any) -> list[tuple[str, bytes, bytes]]:
        try:
            event = decode(record.value)
        except EventDecodeError as exc:
            self.skipped += 1
            log.error(
                "risk: skipping undecodable record %s/%s@%s: %s", record.topic, record.partition, record.offset, exc
            )
            return []
        if not isinstance(event, PayloadCaptured) or event.redacted:
            self.skipped += 1
            return []
        self.scanned += 1
        result = analyze(event, self._scanner, self._redact, self._salt)
        key = event.key
        out = [(self._topics.risk_findings, key, encode(f)) for f in result.findings]
        out.append((self._topics.payloads_redacted, key, encode(result.redacted)))
        if result.alert is not None:
            out.append((self._topics.alerts, key, encode(result.alert)))
        return out
