"""Strict budget mode: a reservation granted by the session's single writer before forwarding.

The request goes to the reservations topic keyed ``tenant/session_id`` (so to the budget
worker owning the session's partition, which decides in partition order against the table);
the decision comes back on the decisions topic keyed by gateway id. Every gateway reads the
decisions topic from its end and keeps the ones addressed to it.

A request that gets no answer in time (worker slow or down, broker unreachable: the send and
the wait share one deadline) is "unknown state" for the caller, and the tenant's
on_unknown_state decides. Nothing is sent from here to release it: the proxy emits a
CallFinished for every call id it admits or refuses, through the emitter and so through its
on-disk spool when the broker is down. That event is the release. A refused call's zero-cost
CallFinished folded before a late request makes it "already_finished", and one folded after a
late grant frees that grant. A call admitted fail-open is released by its own CallFinished,
which charges its actual cost. A zero-cost release here would have marked the call id
finished first, so the fold would have ignored the real CallFinished and its cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError

from services.common.events import (
    EventDecodeError,
    ReservationDecision,
    ReservationRequest,
    decode,
    encode,
)

log = logging.getLogger(__name__)

_TOPIC_POLL_MAX_S = 5.0

# (topic, key, value) -> awaits the broker's acknowledgement
Send = Callable[[str, bytes, bytes], Awaitable[None]]


class BrokerSender:
    """Acknowledged sends for strict reservations; fails fast while the broker is not connected."""

    def __init__(self) -> None:
        self.producer: AIOKafkaProducer | None = None

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        if self.producer is None:
            raise KafkaConnectionError("not connected to the broker yet")
        await self.producer.send_and_wait(topic, value, key=key)


class StrictReservations:
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        requests_topic: str,
        decisions_topic: str,
        gateway_id: str,
        send: Send,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._requests = requests_topic
        self._decisions = decisions_topic
        self._gateway_id = gateway_id
        self._send = send
        self._waiting: dict[str, asyncio.Future[ReservationDecision]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self.timeouts = 0

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=20
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._listen(self._consumer), name="strict-decisions")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def wait_listening(self, within_s: float) -> bool:
        try:
            await asyncio.wait_for(self._listening.wait(), within_s)
        except TimeoutError:
            return False
        return True

    async def reserve(self, request: ReservationRequest, within_s: float) -> ReservationDecision | None:
        """The worker's decision, or None when none came within ``within_s`` (send included)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ReservationDecision] = loop.create_future()
        self._waiting[request.call_id] = future
        try:
            # One deadline for both: with the broker down a send alone can wait for the
            # producer's request timeout (tens of seconds) while the client waits.
            async with asyncio.timeout(within_s):
                await self._send(self._requests, request.key, encode(request))
                return await future
        except (TimeoutError, KafkaError):
            self.timeouts += 1
            return None
        finally:
            self._waiting.pop(request.call_id, None)

    async def _listen(self, consumer: AIOKafkaConsumer) -> None:
        partitions = await self._partitions()
        tps = [TopicPartition(self._decisions, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        self._listening.set()
        me = self._gateway_id.encode()
        while True:
            batches = await consumer.getmany(timeout_ms=50, max_records=1000)
            for records in batches.values():
                for record in records:
                    if record.key == me and record.value is not None:
                        self._on_decision(record.value)

    def _on_decision(self, raw: bytes) -> None:
        try:
            decision = decode(raw)
        except EventDecodeError as exc:
            log.warning("undecodable reservation decision: %s", exc)
            return
        if not isinstance(decision, ReservationDecision):
            return
        future = self._waiting.get(decision.call_id)
        if future is not None and not future.done():
            future.set_result(decision)

    async def _partitions(self) -> set[int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        await admin.start()
        wait = 0.5
        try:
            while True:
                if self._decisions in await admin.list_topics():
                    for described in await admin.describe_topics([self._decisions]):
                        partitions = {p["partition"] for p in described["partitions"]}
                        if described["topic"] == self._decisions and partitions:
                            return partitions
                # Listing every topic is a large metadata response on a busy cluster: back off.
                await asyncio.sleep(wait)
                wait = min(wait * 2, _TOPIC_POLL_MAX_S)
        finally:
            await admin.close()
