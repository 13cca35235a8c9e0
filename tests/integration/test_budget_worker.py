"""The budget worker as a real Faust process on a real broker, observed through the replica."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

from aiokafka import AIOKafkaProducer

from services.common.events import CallFinished, CallStarted, Control, encode
from services.common.session_state import SessionState, changelog_topic
from services.common.topics import Topics, ensure_topics
from services.gateway.replica import SessionReplica
from tests.budget_support import BudgetWorkers

Expected = dict[bytes, dict[str, object]]


def call_events(
    tenant: str, session: str, n: int, rng: random.Random
) -> tuple[list[CallStarted | CallFinished], Decimal]:
    out: list[CallStarted | CallFinished] = []
    total = Decimal(0)
    for i in range(n):
        cid = f"{session}-c{i}"
        cost = Decimal(rng.randint(1, 10**6)) / 10**6
        total += cost
        common = {"tenant": tenant, "session_id": session, "call_id": cid, "provider": "openai", "endpoint": "chat"}
        out.append(CallStarted(**common, iteration=i, reserved_usd=Decimal("0.5"), budget_usd=Decimal("1000")))  # type: ignore[arg-type]
        out.append(
            CallFinished(**common, iteration=i, status_code=200, input_tokens=10, output_tokens=3, cost_usd=cost)  # type: ignore[arg-type]
        )
    return out, total


async def produce(bootstrap: str, topic: str, events, rate_per_s: float | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        t0 = time.monotonic()
        for i, e in enumerate(events):
            await producer.send(topic, encode(e), key=e.key)
            if rate_per_s and i % 50 == 0:
                ahead = i / rate_per_s - (time.monotonic() - t0)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await producer.flush()
    finally:
        await producer.stop()


async def until(cond: Callable[[], bool], within_s: float, what: str | Callable[[], str]) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if cond():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {within_s}s: {what() if callable(what) else what}")


def matches(replica: SessionReplica, expected: dict[bytes, Decimal], n: int) -> bool:
    for key, spent in expected.items():
        s = replica.get(key)
        if s is None or s.spent_usd != spent or s.calls != n or s.reserved_usd != 0:
            return False
    return True


def describe(replica: SessionReplica, expected: dict[bytes, Decimal]) -> Callable[[], str]:
    def f() -> str:
        got = {k: (s.spent_usd, s.calls, s.reserved_usd) if (s := replica.get(k)) else None for k in expected}
        return f"expected {expected}, replica has {got}"

    return f


async def start_replica(bootstrap: str, prefix: str) -> SessionReplica:
    replica = SessionReplica(bootstrap, changelog_topic(prefix))
    await replica.start()
    return replica


async def test_fold_controls_and_redelivery(
    kafka_bootstrap: str, topic_prefix: str, unique: str, budget_workers: BudgetWorkers
):
    topics = Topics.with_prefix(topic_prefix)
    await ensure_topics(kafka_bootstrap, (topics.calls, topics.controls), partitions=4)
    budget_workers.start("w1")
    rng = random.Random(7)
    events: list[CallStarted | CallFinished] = []
    expected: dict[bytes, Decimal] = {}
    for s in range(6):
        evs, total = call_events(unique, f"s{s}", 15, rng)
        events += evs
        expected[evs[0].key] = total
    # Every event a second time, as an at-least-once producer or a replayed partition would.
    redelivered = events + rng.sample(events, len(events))
    controls = [
        Control(tenant=unique, session_id="s0", action="pause", reason="loop"),
        Control(tenant=unique, session_id="s1", action="set_budget", budget_usd=Decimal("3.5")),
    ]
    replica = await start_replica(kafka_bootstrap, topic_prefix)
    try:
        await produce(kafka_bootstrap, topics.calls, redelivered)
        await produce(kafka_bootstrap, topics.controls, controls)
        await until(lambda: matches(replica, expected, 15), 90, describe(replica, expected))
        s0 = replica.get(controls[0].key)
        s1 = replica.get(controls[1].key)
        await until(lambda: bool((s := replica.get(controls[0].key)) and s.paused), 30, "pause applied")
        await until(lambda: bool((s := replica.get(controls[1].key)) and s.budget_locked), 30, "budget set")
        s0, s1 = replica.get(controls[0].key), replica.get(controls[1].key)
        assert s0 is not None and s0.pause_reason == "loop"
        assert s1 is not None and s1.budget_usd == Decimal("3.5")
        s2 = replica.get(events[0].key.replace(b"/s0", b"/s2"))
        assert isinstance(s2, SessionState)
        assert (s2.input_tokens, s2.output_tokens, s2.iterations, s2.last_iteration) == (150, 45, 15, 14)
        assert s2.budget_usd == Decimal("1000") and s2.first_seen is not None and s2.first_seen.tzinfo
    finally:
        await replica.stop()


async def test_worker_sigkilled_mid_load_recovers_from_changelog(
    kafka_bootstrap: str, topic_prefix: str, unique: str, budget_workers: BudgetWorkers
):
    topics = Topics.with_prefix(topic_prefix)
    await ensure_topics(kafka_bootstrap, (topics.calls, topics.controls), partitions=4)
    budget_workers.start("w1")
    rng = random.Random(11)
    events: list[CallStarted | CallFinished] = []
    expected: dict[bytes, Decimal] = {}
    for s in range(10):
        evs, total = call_events(unique, f"s{s}", 150, rng)
        expected[evs[0].key] = total
        events += evs
    # Interleave sessions, keeping each session's order.
    events.sort(key=lambda e: (int(e.call_id.rsplit("-c", 1)[1]), e.session_id))
    replica = await start_replica(kafka_bootstrap, topic_prefix)
    try:
        # Wait until the worker folds, so the kill lands mid-load rather than before start.
        await produce(kafka_bootstrap, topics.calls, events[:200])
        await until(lambda: replica.records_applied > 0, 90, "worker never folded anything")
        load = asyncio.create_task(produce(kafka_bootstrap, topics.calls, events[200:], rate_per_s=1000))
        await asyncio.sleep(0.8)
        budget_workers.kill("w1")
        killed_at = replica.records_applied
        await load
        budget_workers.start("w2")
        await until(lambda: matches(replica, expected, 150), 120, describe(replica, expected))
        assert replica.records_applied > killed_at
        # A fresh replica rebuilds the same state from the compacted changelog alone.
        fresh = await start_replica(kafka_bootstrap, topic_prefix)
        try:
            assert await fresh.wait_ready(60)
            assert fresh.lag() == 0
            assert matches(fresh, expected, 150)
        finally:
            await fresh.stop()
    finally:
        await replica.stop()


Waiter = Callable[[], Awaitable[None]]
