"""The broker is stopped while 1,000 calls go through the gateway: every call succeeds, the
events wait in the on-disk spool, and once the broker is back exactly 1,000 CallFinished
events (by call id) are in Kafka."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any

import aiohttp
import localstack

from services.common.events import CallFinished, CallStarted, Event
from tests.e2e.kafka_events import read_events
from tests.e2e.procs import ServiceProcess
from tests.fixtures import GatewayFactory

N_CALLS = 1000
CONCURRENCY = 32


def _ready(gw: ServiceProcess) -> dict[str, Any]:
    with urllib.request.urlopen(gw.url + "/readyz", timeout=5) as r:
        data: dict[str, Any] = json.loads(r.read())
    return data


def _metrics(gw: ServiceProcess) -> str:
    with urllib.request.urlopen(gw.url + "/metrics", timeout=5) as r:
        return str(r.read().decode())


def _wait_for(gw: ServiceProcess, pred: Any, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    state = _ready(gw)
    while time.monotonic() < deadline and not pred(state):
        time.sleep(0.2)
        state = _ready(gw)
    assert pred(state), state
    return state


async def _calls(url: str, n: int) -> list[str]:
    sem = asyncio.Semaphore(CONCURRENCY)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}

    async def one(session: aiohttp.ClientSession, i: int) -> str:
        async with sem:
            headers = {"Authorization": "Bearer tok-alpha", "X-AgentWatch-Session-Id": f"outage-{i % 17}"}
            async with session.post(f"{url}/v1/proxy/openai/chat/completions", json=body, headers=headers) as r:
                assert r.status == 200, await r.text()
                await r.read()
                return r.headers["X-AgentWatch-Call-Id"]

    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(one(session, i) for i in range(n)))


async def test_broker_down_during_1000_calls_loses_and_doubles_nothing(
    gateway_factory: GatewayFactory, own_kafka: localstack.Kafka, topic_prefix: str
) -> None:
    gw = gateway_factory(KAFKA_BOOTSTRAP_SERVERS=own_kafka.bootstrap, AGENTWATCH_KAFKA_SEND_TIMEOUT_S="2")
    _wait_for(gw, lambda s: s["broker"] == "up", 30)

    await asyncio.to_thread(own_kafka.stop)
    call_ids = await _calls(gw.url, N_CALLS)
    assert len(set(call_ids)) == N_CALLS
    down = _wait_for(gw, lambda s: s["broker"] == "down" and s["queued_events"] == 0, 30)
    assert down["spooled_bytes"] > 0

    await asyncio.to_thread(own_kafka.start)
    _wait_for(gw, lambda s: s["broker"] == "up" and s["spooled_bytes"] == 0, 90)

    wanted = set(call_ids)

    def done(evs: list[Event]) -> bool:
        return wanted <= {e.call_id for e in evs if isinstance(e, CallFinished)}

    events = await read_events(own_kafka.bootstrap, f"{topic_prefix}calls", done, timeout_s=60)
    # The spool was empty before reading, so every copy of every event is already in the topic.
    finished = [e.call_id for e in events if isinstance(e, CallFinished)]
    started = [e.call_id for e in events if isinstance(e, CallStarted)]
    assert sorted(finished) == sorted(wanted)
    assert sorted(started) == sorted(wanted)

    metrics = _metrics(gw)
    assert "agentwatch_gateway_events_dropped_total 0.0" in metrics
