"""Event emission that never blocks a call and survives a broker outage.

``emit`` appends to an in-memory queue and returns. One sender task moves the queue to
Kafka (idempotent producer, acks=all) in batches. When a send fails or times out the broker
is considered down: the failed records and everything queued after them go, in order, to the
on-disk spool. A supervisor task reconnects with a fresh producer, replays the spool oldest
first, and only when it is empty lets the sender write straight to Kafka again, so per-key
order is kept across an outage.

What can be lost: records still in the in-memory queue when the process is killed
(SIGKILL, OOM); a clean stop (SIGTERM) drains the queue to Kafka or to the spool. What can be
doubled: a record whose acknowledgement was lost while the broker went down is spooled and
sent again; consumers deduplicate by ``event_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from services.common.events import Event, encode
from services.common.topics import ensure_topics
from services.gateway.metrics import GatewayMetrics
from services.gateway.spool import Record, Spool

log = logging.getLogger(__name__)

_BATCH = 2000
_DROP_LOG_INTERVAL_S = 10.0
_PARTITION_CACHE_SIZE = 100_000
_PARTITIONER = DefaultPartitioner()

ProducerFactory = Callable[[], AIOKafkaProducer]


class Emitter:
    def __init__(
        self,
        bootstrap_servers: str,
        spool: Spool,
        metrics: GatewayMetrics,
        *,
        queue_size: int,
        send_timeout_s: float,
        topics_to_ensure: tuple[str, ...] = (),
        topic_partitions: int = 12,
        topic_replication: int = 1,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._spool = spool
        self._metrics = metrics
        self._queue_size = queue_size
        self._timeout = send_timeout_s
        self._topics = topics_to_ensure
        self._partitions = topic_partitions
        self._replication = topic_replication
        self._queue: deque[Record] = deque()
        self._wake = asyncio.Event()
        self._trouble = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._partition_cache: dict[tuple[str, bytes], int] = {}
        self._down = True
        # True while a live producer replays the spool; the sender holds new records meanwhile.
        self._draining = False
        self._drained = asyncio.Event()
        self._drained.set()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._last_drop_log = 0.0
        self._dropped_since_log = 0
        metrics.spool_bytes.set(spool.size)

    @property
    def broker_up(self) -> bool:
        return self._producer is not None and not self._down

    @property
    def spool_size(self) -> int:
        return self._spool.size

    @property
    def pending(self) -> int:
        return len(self._queue)

    def emit(self, topic: str, event: Event) -> None:
        """Never blocks and never raises for broker trouble."""
        self.emit_raw(Record(topic, event.key, encode(event)))

    def emit_raw(self, record: Record) -> None:
        if len(self._queue) >= self._queue_size:
            # The sender is far behind (broker slow or down, or the spool being replayed): keep
            # memory bounded, and spool what waits before this record so that order is kept.
            self._queue.append(record)
            waiting = list(self._queue)
            self._queue.clear()
            self._to_spool(waiting)
            return
        self._queue.append(record)
        self._wake.set()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._sender(), name="emitter-sender"),
            asyncio.create_task(self._supervisor(), name="emitter-supervisor"),
        ]

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        rest = list(self._queue)
        self._queue.clear()
        if rest and self.broker_up and self._producer is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_timeout_s):
                    rest = await self._send(self._producer, rest)
        if rest:
            self._to_spool(rest)
        await self._drop_producer()
        self._spool.close()

    # ------------------------------------------------------------------ internals

    def _to_spool(self, records: list[Record]) -> None:
        written = self._spool.append(records)
        self._metrics.events_spooled.inc(written)
        self._metrics.spool_bytes.set(self._spool.size)
        dropped = len(records) - written
        if dropped:
            self._metrics.events_dropped.inc(dropped)
            self._dropped_since_log += dropped
            now = time.monotonic()
            if now - self._last_drop_log >= _DROP_LOG_INTERVAL_S:
                log.error(
                    "event spool full (%d bytes): dropped %d events since last report",
                    self._spool.size,
                    self._dropped_since_log,
                )
                self._last_drop_log = now
                self._dropped_since_log = 0

    async def _partition(self, producer: AIOKafkaProducer, rec: Record) -> int:
        """The partition ``send()`` would pick (murmur2 of the key), cached per key: the pure
        Python murmur2 costs more than the rest of an append."""
        cache_key = (rec.topic, rec.key)
        found = self._partition_cache.get(cache_key)
        if found is not None:
            return found
        partitions = sorted(await producer.partitions_for(rec.topic))
        part: int = _PARTITIONER(rec.key, partitions, partitions)
        if len(self._partition_cache) >= _PARTITION_CACHE_SIZE:
            self._partition_cache.clear()
        self._partition_cache[cache_key] = part
        return part

    async def _send(self, producer: AIOKafkaProducer, batch: list[Record]) -> list[Record]:
        """Send in order; returns the records that were not acknowledged, in order.

        Records are packed into one producer batch per partition (``send_batch``) rather than
        sent one by one: a ``send()`` per record costs a coroutine, a partitioner call and a
        future each, which at thousands of events a second was the gateway's largest own cost.
        Per-partition order is kept: a partition's batches are submitted in record order."""
        submitted: list[tuple[list[int], asyncio.Future[object]]] = []
        open_batches: dict[tuple[str, int], tuple[BatchBuilder, list[int]]] = {}
        try:
            async with asyncio.timeout(self._timeout):
                for i, rec in enumerate(batch):
                    tp = (rec.topic, await self._partition(producer, rec))
                    entry = open_batches.get(tp)
                    if entry is None:
                        entry = open_batches[tp] = (producer.create_batch(), [])
                    if entry[0].append(key=rec.key, value=rec.value, timestamp=None) is None:
                        # Full: submit it; an empty builder always takes one record.
                        submitted.append((entry[1], await producer.send_batch(entry[0], tp[0], partition=tp[1])))
                        entry = open_batches[tp] = (producer.create_batch(), [])
                        entry[0].append(key=rec.key, value=rec.value, timestamp=None)
                    entry[1].append(i)
                for tp, (builder, indexes) in list(open_batches.items()):
                    del open_batches[tp]
                    submitted.append((indexes, await producer.send_batch(builder, tp[0], partition=tp[1])))
        except (KafkaError, TimeoutError, OSError):
            pass
        futures = [f for _, f in submitted]
        results: list[object] = []
        try:
            async with asyncio.timeout(self._timeout * 2):
                results = list(await asyncio.gather(*futures, return_exceptions=True))
        except TimeoutError:
            results = [f.exception() if f.done() and not f.cancelled() else TimeoutError() for f in futures]
        acked: set[int] = set()
        for (indexes, _), r in zip(submitted, results, strict=True):
            if not isinstance(r, BaseException):
                acked.update(indexes)
        failed = [rec for i, rec in enumerate(batch) if i not in acked]
        self._metrics.events_sent.inc(len(batch) - len(failed))
        return failed

    async def _sender(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._draining:
                # The supervisor is replaying the spool to a live broker: newer records wait
                # here rather than join the spool, or under steady traffic the spool would
                # never empty and every event would go through the disk.
                await self._drained.wait()
                continue
            n = min(len(self._queue), _BATCH)
            batch = [self._queue.popleft() for _ in range(n)]
            producer = self._producer
            if producer is None or self._down:
                self._to_spool(batch)
                continue
            if not self._spool.empty():
                # Records overflowed to the spool while the broker was up: they go first.
                self._queue.extendleft(reversed(batch))
                self._set_draining(True)
                self._trouble.set()
                continue
            failed = await self._send(producer, batch)
            if failed:
                if not self._down:
                    log.warning("Kafka unreachable: spooling events to %s until it returns", "disk")
                self._mark_down()
                self._to_spool(failed)

    def _set_draining(self, draining: bool) -> None:
        self._draining = draining
        if draining:
            self._drained.clear()
        else:
            self._drained.set()

    def _mark_down(self) -> None:
        self._down = True
        self._metrics.broker_up.set(0)
        self._trouble.set()

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        self._partition_cache.clear()
        if producer is not None:
            await self._stop_quietly(producer)

    async def _connect(self) -> AIOKafkaProducer | None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            enable_idempotence=True,
            acks="all",
            # Events are off the call path: a longer linger means fewer, larger produce requests.
            linger_ms=20,
            request_timeout_ms=int(self._timeout * 1000),
            retry_backoff_ms=100,
        )
        try:
            async with asyncio.timeout(self._timeout * 2):
                await producer.start()
                if self._topics:
                    await ensure_topics(
                        self._bootstrap, self._topics, partitions=self._partitions, replication=self._replication
                    )
        except (KafkaError, TimeoutError, OSError):
            await self._stop_quietly(producer)
            return None
        except asyncio.CancelledError:
            # Stopped while connecting: do not leave the half-started producer's tasks behind.
            await self._stop_quietly(producer)
            raise
        return producer

    async def _stop_quietly(self, producer: AIOKafkaProducer) -> None:
        with contextlib.suppress(KafkaError, TimeoutError, OSError):
            async with asyncio.timeout(self._timeout):
                await producer.stop()

    async def _replay(self, producer: AIOKafkaProducer) -> bool:
        """Send the oldest spooled segment; False when the broker failed again."""
        oldest = self._spool.oldest()
        if oldest is None:
            return True
        path, records = oldest
        failed = await self._send(producer, records) if records else []
        if failed:
            # Keep only what was not acknowledged, so a replay never sends a record twice.
            self._spool.rewrite(path, failed)
            self._metrics.spool_bytes.set(self._spool.size)
            return False
        self._spool.remove(path)
        self._metrics.spool_bytes.set(self._spool.size)
        return True

    async def _supervisor(self) -> None:
        backoff = 0.2
        while not self._stopping:
            if self._producer is None:
                self._producer = await self._connect()
                if self._producer is None:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                backoff = 0.2
            if not self._spool.empty():
                self._set_draining(True)
                if not await self._replay(self._producer):
                    # Broker gone again: the sender spools what waited (after the spool, in order).
                    self._set_draining(False)
                    await self._drop_producer()
                continue
            # Spool empty and no await since the check: the sender may write straight to Kafka.
            if self._down:
                log.info("Kafka reachable: events go straight to the broker")
            self._down = False
            self._set_draining(False)
            self._trouble.clear()
            self._metrics.broker_up.set(1)
            self._wake.set()
            await self._trouble.wait()
            if self._down:
                # A fresh producer after an outage: no idempotence state from failed batches.
                await self._drop_producer()
