"""One consumer group per store: read a batch, write it, then commit — never the other way round.

A batch is written when it holds ``batch_rows`` records or its first record waited
``batch_ms``. Offsets (``last.offset + 1`` per partition) are committed only after the store
accepted the whole batch, so a crash at any point replays at most the uncommitted batch,
which the idempotent stores absorb. While the store is down the consumer pauses its
partitions, retries with exponential backoff and commits nothing; the other store's group is
a separate task and carries on.

Records that cannot be stored never block their partition, and are never dropped silently
either: undecodable bytes, and events the store refuses for their data (``StoreDataError``:
the batch is bisected until the refused events stand alone, the rest is written), become
dead letters in PostgreSQL before the offsets past them are committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from services.common.events import EventDecodeError, decode, encode
from services.sink.batch import Batch, Undecodable
from services.sink.dead_letters import DeadLetter, DeadLetterStore
from services.sink.errors import SinkError, StoreDataError
from services.sink.settings import SinkSettings
from services.sink.store import Store

log = logging.getLogger(__name__)

# Long enough to ride out a store outage without being evicted from the group: heartbeats
# still prove the process alive, and another member would hit the same store anyway.
MAX_POLL_INTERVAL_MS = 6 * 3600 * 1000
# How long a revoke waits for a store that is down before handing its partitions over
# uncommitted (the next owner replays them; the stores are idempotent).
REVOKE_FLUSH_S = 10.0


@dataclass(slots=True)
class ConsumerStats:
    records: int = 0
    bad_records: int = 0
    # Rows added to sink_dead_letters by this consumer (undecodable or refused by the store).
    dead_letters: int = 0
    rejected_events: int = 0
    rows_written: int = 0
    batches: int = 0
    retries: int = 0
    commits: int = 0
    last_error: str | None = None
    store_down: bool = False


class _Revoked(Exception):
    """A rebalance took the partitions while a write was being retried."""


class StoreConsumer:
    def __init__(
        self,
        store: Store,
        settings: SinkSettings,
        topics: Sequence[str],
        group_id: str,
        dead_letters: DeadLetterStore,
    ) -> None:
        self.store = store
        self._dead_letters = dead_letters
        self.stats = ConsumerStats()
        self._settings = settings
        self._topics = list(topics)
        self._group_id = group_id
        self._batch = Batch()
        self._offsets: dict[TopicPartition, int] = {}
        self._first_at: float | None = None
        self._lock = asyncio.Lock()
        self._revoking = False
        self._stop = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._inflight: asyncio.Task[bool] | None = None

    def stop(self) -> None:
        self._stop.set()

    def assignment(self) -> frozenset[TopicPartition]:
        """The partitions this member owns now (empty before it joined its group)."""
        return frozenset(self._consumer.assignment()) if self._consumer is not None else frozenset()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            group_id=self._group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
            rebalance_timeout_ms=MAX_POLL_INTERVAL_MS,
            client_id=f"agentwatch-sink-{self.store.name}",
            fetch_max_bytes=self._settings.fetch_max_bytes,
            max_partition_fetch_bytes=self._settings.partition_fetch_bytes,
        )
        consumer.subscribe(self._topics, listener=_Listener(self))
        self._consumer = consumer
        await consumer.start()
        log.info("%s consumer started on %s (group %s)", self.store.name, ", ".join(self._topics), self._group_id)
        try:
            while not self._stop.is_set():
                await self._poll_once(consumer)
            async with self._lock:
                await self._flush_locked(consumer, deadline=time.monotonic() + REVOKE_FLUSH_S)
        finally:
            if self._inflight is not None:
                # Stopping hard (an error above): the batch in flight is not committed, and replays.
                self._inflight.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._inflight
                self._inflight = None
            await consumer.stop()
            self._consumer = None

    async def _poll_once(self, consumer: AIOKafkaConsumer) -> None:
        s = self._settings
        now = time.monotonic()
        wait_ms = (
            s.batch_ms if self._first_at is None else max(0, int((self._first_at + s.batch_ms / 1000 - now) * 1000))
        )
        room = max(1, s.batch_rows - self._batch.records)
        data = await consumer.getmany(timeout_ms=wait_ms, max_records=room)
        async with self._lock:
            assigned = consumer.assignment()
            for tp, messages in data.items():
                # Records fetched before a rebalance took their partition belong to the next owner.
                if tp not in assigned or not messages:
                    continue
                topic, partition = tp.topic, tp.partition
                for message in messages:
                    self._add(message.value, topic, partition, message.offset)
                self._offsets[tp] = messages[-1].offset + 1
            if self._batch.records and self._first_at is None:
                self._first_at = time.monotonic()
            due = self._first_at is not None and time.monotonic() - self._first_at >= s.batch_ms / 1000
            if self._batch.records >= s.batch_rows or due:
                await self._flush_async_locked(consumer)

    def _add(self, value: bytes | None, topic: str, partition: int, offset: int) -> None:
        self._batch.records += 1
        self.stats.records += 1
        try:
            if value is None:
                raise EventDecodeError("empty record")
            event = decode(value)
        except EventDecodeError as exc:
            self.stats.bad_records += 1
            self._batch.undecodable.append(Undecodable((topic, partition, offset, value), str(exc)))
            if self.stats.bad_records <= 10 or self.stats.bad_records % 1000 == 0:
                log.warning(
                    "%s: undecodable record %s[%d]@%d goes to the dead letters (%d so far): %s",
                    self.store.name,
                    topic,
                    partition,
                    offset,
                    self.stats.bad_records,
                    exc,
                )
            return
        self._batch.add(event, (topic, partition, offset, value))

    def _take(self) -> tuple[Batch, dict[TopicPartition, int]]:
        batch, offsets = self._batch, dict(self._offsets)
        self._batch = Batch()
        self._offsets.clear()
        self._first_at = None
        return batch, offsets

    async def _drain_locked(self) -> bool:
        """Wait for the batch being written; False when it was given up (not committed)."""
        task, self._inflight = self._inflight, None
        return True if task is None else await task

    async def _flush_async_locked(self, consumer: AIOKafkaConsumer) -> None:
        # One batch is written while the next one fills: fetching and decoding overlap the write.
        # Batches are written and committed strictly in order, one at a time.
        if not await self._drain_locked():
            # An earlier batch was given up uncommitted: committing later offsets would skip it.
            self._take()
            return
        batch, offsets = self._take()
        self._inflight = asyncio.create_task(self._write_and_commit(consumer, batch, offsets, None))

    async def _flush_locked(self, consumer: AIOKafkaConsumer, deadline: float | None = None) -> None:
        """Write and commit everything held, now (on revoke and at stop)."""
        if not await self._drain_locked():
            self._take()
            return
        if self._batch.records:
            batch, offsets = self._take()
            await self._write_and_commit(consumer, batch, offsets, deadline)

    async def _write_and_commit(
        self, consumer: AIOKafkaConsumer, batch: Batch, offsets: dict[TopicPartition, int], deadline: float | None
    ) -> bool:
        try:
            await self._write_with_retry(consumer, batch, deadline)
        except _Revoked:
            log.warning("%s: partitions revoked while the store was down; the next owner replays", self.store.name)
            return False
        if offsets:
            try:
                await consumer.commit(offsets)
                self.stats.commits += 1
            except (CommitFailedError, KafkaError) as exc:
                # The rows are stored; whoever owns the partitions now re-reads them and the
                # idempotent write adds nothing.
                log.warning("%s: commit failed after a write (%s); the batch will be replayed", self.store.name, exc)
        self.stats.batches += 1
        self.stats.rows_written += batch.rows
        return True

    async def _write_with_retry(self, consumer: AIOKafkaConsumer, batch: Batch, deadline: float | None) -> None:
        s = self._settings
        delay = s.retry_initial_s
        paused: list[TopicPartition] = []
        try:
            while True:
                try:
                    await self._write_isolating(batch)
                    if batch.undecodable:
                        await self._dead_letter([self._letter(u) for u in batch.undecodable])
                    if self.stats.store_down:
                        log.info("%s: store is back, batch written", self.store.name)
                    self.stats.store_down = False
                    return
                except SinkError as exc:
                    self.stats.retries += 1
                    self.stats.last_error = str(exc)[:500]
                    if not self.stats.store_down:
                        log.warning("%s: write failed, retrying with backoff: %s", self.store.name, exc)
                    self.stats.store_down = True
                    if not paused:
                        # Stop fetching more than the batches we hold until the store takes them.
                        paused = list(consumer.assignment())
                        consumer.pause(*paused)
                    # A rebalance is waiting: the in-flight batch gives way at once, the
                    # revoke's own flush after its deadline.
                    if (deadline is None and self._revoking) or (deadline is not None and time.monotonic() >= deadline):
                        raise _Revoked from exc
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, s.retry_max_s)
        finally:
            if paused:
                consumer.resume(*[tp for tp in paused if tp in consumer.assignment()])

    async def _write_isolating(self, batch: Batch) -> None:
        """Write ``batch``; events the store refuses for their data become dead letters, the rest lands.

        Bisecting costs about 2·log2(rows) extra writes per refused event; the stores are
        idempotent, so the halves that were already written add nothing when written again.
        """
        if not batch.rows:
            return
        try:
            await self.store.write(batch)
        except StoreDataError as exc:
            if batch.rows > 1:
                first, second = batch.split()
                await self._write_isolating(first)
                await self._write_isolating(second)
                return
            [event] = batch.events()
            source = batch.sources.get(event.event_id)
            topic, partition, offset, raw = source if source is not None else ("", -1, -1, encode(event))
            self.stats.rejected_events += 1
            event_type = str(type(event).__struct_config__.tag)
            log.warning(
                "%s: %s %s refused (%s[%d]@%d), sent to the dead letters: %s",
                self.store.name,
                event_type,
                event.event_id,
                topic,
                partition,
                offset,
                exc,
            )
            letter = DeadLetter(topic, partition, offset, self.store.name, str(exc), raw, event_type, event.event_id)
            await self._dead_letter([letter])

    def _letter(self, undecodable: Undecodable) -> DeadLetter:
        topic, partition, offset, raw = undecodable.source
        return DeadLetter(topic, partition, offset, self.store.name, undecodable.error, raw)

    async def _dead_letter(self, letters: list[DeadLetter]) -> None:
        self.stats.dead_letters += await self._dead_letters.write(letters)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        self._revoking = True
        try:
            async with self._lock:
                await self._flush_locked(consumer, deadline=time.monotonic() + REVOKE_FLUSH_S)
        finally:
            self._revoking = False


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: StoreConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._owner.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("%s: assigned %d partitions", self._owner.store.name, len(assigned))
