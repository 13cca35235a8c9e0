"""Reading AgentWatch events back from a real Kafka topic in end-to-end tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer

from services.common.events import Event, decode


async def read_events(
    bootstrap: str, topic: str, done: Callable[[list[Event]], bool], timeout_s: float = 30.0
) -> list[Event]:
    """Every event on ``topic`` from the start, until ``done(events)`` or the timeout."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    events: list[Event] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not done(events):
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                events.extend(decode(r.value) for r in records if r.value is not None)
    finally:
        await asyncio.wait_for(consumer.stop(), 10)
    return events
