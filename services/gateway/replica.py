"""The gateway's read-only replica of the budget workers' sessions table.

An aiokafka consumer reads the table's (compacted) changelog from the beginning into a dict,
so a budget decision is a dict lookup with no network hop. It joins no consumer group and
commits nothing: every gateway replays the whole changelog at start (compaction keeps it to
one record per session) and is "ready" once it has read up to the end offsets it saw then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from services.common.session_state import SessionState, SessionStateDecodeError, decode_state

log = logging.getLogger(__name__)

Listener = Callable[[bytes, SessionState | None], None]


class SessionReplica:
    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        listener: Listener | None = None,
        poll_ms: int = 50,
        fetch_wait_ms: int = 20,
        retry_s: float = 0.5,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._listener = listener
        self._poll_ms = poll_ms
        # aiokafka keeps one fetch in flight per broker and leaves out of it the partitions
        # whose records are still buffered; once applied, they wait for that fetch to return,
        # which the broker holds up to this long when its partitions are idle. Short, so a
        # session's update is not parked behind quiet partitions.
        self._fetch_wait_ms = fetch_wait_ms
        self._retry_s = retry_s
        self._states: dict[bytes, SessionState] = {}
        self._targets: dict[TopicPartition, int] | None = None
        self._positions: dict[TopicPartition, int] = {}
        self._ready = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.records_applied = 0
        self.decode_errors = 0
        self.last_applied_monotonic: float | None = None

    # ---------------------------------------------------------------- lookups (hot path)

    def get(self, key: bytes) -> SessionState | None:
        return self._states.get(key)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self, within_s: float) -> bool:
        try:
            await asyncio.wait_for(self._ready.wait(), within_s)
        except TimeoutError:
            return False
        return True

    def lag(self) -> int | None:
        """Changelog records not yet applied (None before the first fetch)."""
        consumer = self._consumer
        if consumer is None or self._targets is None:
            return None
        total = 0
        for tp in self._targets:
            high = consumer.highwater(tp)
            if high is None:
                return None
            total += max(0, high - self._positions.get(tp, 0))
        return total

    def __len__(self) -> int:
        return len(self._states)

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"replica:{self._topic}")
        self._task.add_done_callback(self._on_done)

    def _on_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # From here on lookups go stale and admission sees the state as unknown.
            log.error("session replica of %s stopped", self._topic, exc_info=task.exception())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        # A broker that is down at start (or a changelog not created yet, before the first
        # budget worker ran) is retried; meanwhile the state is "unknown" and admission
        # follows each tenant's on_unknown_state policy.
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=self._fetch_wait_ms,
            )
            try:
                await consumer.start()
                self._consumer = consumer
                await self._follow(consumer)
            except KafkaError as exc:
                log.warning("session replica of %s: %s; retrying", self._topic, exc)
            finally:
                self._consumer = None
                await consumer.stop()
            await asyncio.sleep(self._retry_s)

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        partitions = await self._partitions()
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        # On a reconnect, continue where we were instead of replaying from the start.
        for tp in tps:
            if tp in self._positions:
                consumer.seek(tp, self._positions[tp])
            else:
                await consumer.seek_to_beginning(tp)
        if self._targets is None:
            self._targets = dict(await consumer.end_offsets(tps))
        self._check_ready()
        while True:
            batches = await consumer.getmany(timeout_ms=self._poll_ms, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    self._apply(record.key, record.value)
                if records:
                    self._positions[tp] = records[-1].offset + 1
            if not self._ready.is_set():
                for tp in tps:
                    self._positions[tp] = await consumer.position(tp)
                self._check_ready()

    async def _partitions(self) -> set[int]:
        """The changelog's partitions, once a budget worker has created it (never auto-created here)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        await admin.start()
        try:
            while True:
                if self._topic in await admin.list_topics():
                    for described in await admin.describe_topics([self._topic]):
                        partitions = {p["partition"] for p in described["partitions"]}
                        if described["topic"] == self._topic and partitions:
                            return partitions
                await asyncio.sleep(self._retry_s)
        finally:
            await admin.close()

    def _check_ready(self) -> None:
        if self._targets is not None and all(self._positions.get(tp, 0) >= end for tp, end in self._targets.items()):
            if not self._ready.is_set():
                log.info("session replica of %s ready: %d sessions", self._topic, len(self._states))
            self._ready.set()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        state: SessionState | None
        if value is None:
            self._states.pop(key, None)
            state = None
        else:
            try:
                state = decode_state(value)
            except SessionStateDecodeError as exc:
                self.decode_errors += 1
                log.error("undecodable session state for %r, keeping the previous one: %s", key, exc)
                return
            self._states[key] = state
        self.records_applied += 1
        self.last_applied_monotonic = time.monotonic()
        if self._listener is not None:
            self._listener(key, state)
