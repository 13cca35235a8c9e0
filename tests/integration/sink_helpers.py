"""Events for the sink's tests, what they should sum to, and how to produce them fast."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aiokafka import AIOKafkaProducer

from services.common.events import Alert, CallFinished, CallStarted, Event, RiskFinding, encode


@dataclass
class Expected:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    alerts: int = 0
    findings: int = 0
    sessions: set[tuple[str, str]] = field(default_factory=set)

    def add(self, event: Event) -> None:
        if isinstance(event, CallFinished):
            self.calls += 1
            self.prompt_tokens += event.input_tokens
            self.completion_tokens += event.output_tokens
            self.cost_usd += event.cost_usd or Decimal(0)
            if event.session_id:
                self.sessions.add((event.tenant, event.session_id))
        elif isinstance(event, Alert):
            self.alerts += 1
        elif isinstance(event, RiskFinding):
            self.findings += 1


def make_events(n_calls: int, tenant: str, seed: int = 7, days: int = 3) -> list[Event]:
    """``n_calls`` finished calls (plus their CallStarted, some alerts and findings), over ``days`` days."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out: list[Event] = []
    for i in range(n_calls):
        session = f"s{i % 500}"
        ts = now - timedelta(days=i % days, seconds=rng.randint(0, 3000), microseconds=rng.randint(0, 999_999))
        call_id = f"{tenant}-c{i}"
        unpriced = i % 97 == 0
        if i % 10 == 0:
            out.append(
                CallStarted(tenant=tenant, session_id=session, call_id=call_id, provider="openai", endpoint="chat")
            )
        out.append(
            CallFinished(
                tenant=tenant,
                session_id=session,
                ts=ts,
                call_id=call_id,
                iteration=i // 500,
                project=f"p{i % 4}",
                team=f"team{i % 3}",
                provider="openai" if i % 2 else "anthropic",
                model="gpt-4o" if i % 2 else "claude-sonnet-4",
                endpoint="chat/completions",
                streamed=bool(i % 3),
                status_code=200 if i % 50 else 500,
                input_tokens=rng.randint(1, 20_000),
                output_tokens=rng.randint(0, 4_000),
                cached_tokens=rng.randint(0, 100),
                cost_usd=None if unpriced else Decimal(rng.randint(0, 10**8)) / Decimal(10**9),
                price_known=not unpriced,
                latency_ms=rng.uniform(50, 5000),
                ttft_ms=rng.uniform(10, 500),
            )
        )
        if i % 1000 == 0:
            out.append(Alert(tenant=tenant, session_id=session, detector="loop", evidence={"i": i}, ts=ts))
        if i % 700 == 0:
            out.append(
                RiskFinding(
                    tenant=tenant, session_id=session, call_id=call_id, location="request", finding_type="email", ts=ts
                )
            )
    return out


def topic_of(event: Event, calls: str, alerts: str, findings: str) -> str:
    if isinstance(event, Alert):
        return alerts
    if isinstance(event, RiskFinding):
        return findings
    return calls


async def produce(bootstrap: str, events: list[Event], calls: str, alerts: str, findings: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024, acks="all")
    await producer.start()
    try:
        pending = []
        for event in events:
            pending.append(await producer.send(topic_of(event, calls, alerts, findings), encode(event), key=event.key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
