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
from decimal import Decimal

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from services.common.session_state import SessionState, SessionStateDecodeError, decode_state

log = logging.getLogger(__name__)

_TOPIC_POLL_MAX_S = 5.0
_DECODED_CACHE_SIZE = 4096
_FETCH_MAX_BYTES = 1024 * 1024

Listener = Callable[[bytes, SessionState | None], None]


class _Kept(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The fields of a SessionState that admission (services.gateway.budget) reads."""

    tenant: str
    session_id: str
    spent_usd: Decimal = Decimal(0)
    reserved_usd: Decimal = Decimal(0)
    calls: int = 0
    iterations: int = 0
    budget_usd: Decimal | None = None
    budget_locked: bool = False
    paused: bool = False
    pause_reason: str | None = None
    in_flight: dict[str, Decimal] = msgspec.field(default_factory=dict)
    recent_finished: list[str] = msgspec.field(default_factory=list)


_KEPT_FIELDS = _Kept.__struct_fields__
_encode_kept = msgspec.json.Encoder(decimal_format="string").encode


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
        admission_fields_only: bool = False,
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
        # The gateway keeps only what admission reads (about half the bytes of a full state);
        # the other fields of a looked-up state then hold their defaults.
        self._trim = admission_fields_only
        # Sessions are kept as their encoded bytes (one object of ~600 bytes) and decoded on
        # lookup (~2.5 us), with the recently used ones kept decoded: a decoded SessionState is
        # some twenty objects, ~1.6 kB, which at 100,000 sessions was most of the gateway's RSS.
        self._states: dict[bytes, bytes] = {}
        self._decoded: dict[bytes, tuple[bytes, SessionState]] = {}
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
        raw = self._states.get(key)
        if raw is None:
            return None
        hit = self._decoded.get(key)
        if hit is not None and hit[0] is raw:
            return hit[1]
        # Cannot fail: only values that decoded are stored.
        state = decode_state(raw)
        self._remember(key, raw, state)
        return state

    def version(self, key: bytes) -> object:
        """The key's stored bytes: a new object on every applied record (an unchanged object
        is unchanged content), so admission can keep sums computed against one state."""
        return self._states.get(key)

    def _remember(self, key: bytes, raw: bytes, state: SessionState) -> None:
        if len(self._decoded) >= _DECODED_CACHE_SIZE:
            self._decoded.clear()
        self._decoded[key] = (raw, state)

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
                # Small fetches: at start the whole changelog is read, and the consumer's
                # default (50 MB a fetch, 1 MB a partition) held tens of MB of buffers that,
                # once freed, stayed in the process's RSS.
                fetch_max_bytes=_FETCH_MAX_BYTES,
                max_partition_fetch_bytes=_FETCH_MAX_BYTES // 4,
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
        wait = self._retry_s
        try:
            while True:
                if self._topic in await admin.list_topics():
                    for described in await admin.describe_topics([self._topic]):
                        partitions = {p["partition"] for p in described["partitions"]}
                        if described["topic"] == self._topic and partitions:
                            return partitions
                # Listing every topic is a large metadata response on a busy cluster: back off.
                await asyncio.sleep(wait)
                wait = min(wait * 2, max(self._retry_s, _TOPIC_POLL_MAX_S))
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
            self._decoded.pop(key, None)
            state = None
        else:
            try:
                state = decode_state(value)
            except SessionStateDecodeError as exc:
                self.decode_errors += 1
                log.error("undecodable session state for %r, keeping the previous one: %s", key, exc)
                return
            stored = _encode_kept(_Kept(**{f: getattr(state, f) for f in _KEPT_FIELDS})) if self._trim else value
            self._states[key] = stored
            self._decoded.pop(key, None)
        self.records_applied += 1
        self.last_applied_monotonic = time.monotonic()
        if self._listener is not None:
            self._listener(key, state)
