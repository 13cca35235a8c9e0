"""Strict mode: two budget workers, two gateways' reservation clients, one session budget."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from aiokafka import AIOKafkaProducer

from services.common.events import ReservationRequest, new_id
from services.common.session_state import changelog_topic
from services.common.topics import Topics, ensure_topics
from services.gateway.replica import SessionReplica
from services.gateway.strict import StrictReservations
from tests.budget_support import BudgetWorkers


def request(tenant: str, session: str, gateway_id: str, amount: str = "0.10") -> ReservationRequest:
    return ReservationRequest(
        tenant=tenant,
        session_id=session,
        call_id=new_id(),
        amount_usd=Decimal(amount),
        budget_usd=Decimal("1.00"),
        gateway_id=gateway_id,
    )


async def test_two_gateways_two_workers_strict_budget_holds_exactly(
    kafka_bootstrap: str, topic_prefix: str, unique: str, budget_workers: BudgetWorkers
):
    topics = Topics.with_prefix(topic_prefix)
    await ensure_topics(
        kafka_bootstrap,
        (topics.calls, topics.controls, topics.reservations, topics.reservation_decisions),
        partitions=4,
    )
    budget_workers.start("w1")
    budget_workers.start("w2")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()

    async def send(topic: str, key: bytes, value: bytes) -> None:
        await producer.send_and_wait(topic, value, key=key)

    gateways = [
        StrictReservations(
            kafka_bootstrap,
            requests_topic=topics.reservations,
            decisions_topic=topics.reservation_decisions,
            gateway_id=f"gw{i}",
            send=send,
        )
        for i in range(2)
    ]
    replica = SessionReplica(kafka_bootstrap, changelog_topic(topic_prefix))
    try:
        for g in gateways:
            await g.start()
            assert await g.wait_listening(30)
        await replica.start()
        # Both workers joined and own their partitions once warm-up sessions on every
        # partition are answered promptly several times in a row.
        deadline, streak, n = time.monotonic() + 120, 0, 0
        while streak < 8:
            assert time.monotonic() < deadline, "budget workers never answered promptly"
            n += 1
            d = await gateways[n % 2].reserve(request(unique, f"warm{n}", f"gw{n % 2}"), within_s=3)
            streak = streak + 1 if d is not None and d.granted else 0
        timeouts_before = sum(g.timeouts for g in gateways)

        reqs = [request(unique, "shared", f"gw{i % 2}") for i in range(40)]
        decisions = await asyncio.gather(*(gateways[i % 2].reserve(r, within_s=20) for i, r in enumerate(reqs)))
        assert all(d is not None for d in decisions)
        granted = [d for d in decisions if d is not None and d.granted]
        codes = {d.code for d in decisions if d is not None and not d.granted}
        assert len(granted) == 10
        assert codes == {"budget_exceeded"}
        assert sum(g.timeouts for g in gateways) == timeouts_before
        key = reqs[0].key
        assert await replica.wait_ready(30)
        deadline = time.monotonic() + 30
        while (s := replica.get(key)) is None or len(s.in_flight) < 10:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert s.reserved_usd == Decimal("1.00") and s.spent_usd + s.reserved_usd <= s.budget_usd  # type: ignore[operator]
    finally:
        await replica.stop()
        for g in gateways:
            await g.stop()
        await producer.stop()
