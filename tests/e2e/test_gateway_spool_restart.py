"""Spool durability across a gateway restart: events spooled while the broker was unreachable
are replayed by the next gateway process on the same spool directory, after a clean stop
(SIGTERM drains the queue) and after a crash (SIGKILL once they are spooled)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.common.events import CallFinished, Event
from tests.e2e.kafka_events import read_events
from tests.e2e.procs import ServiceProcess, free_port
from tests.fixtures import GatewayFactory

N_CALLS = 40


def _has_segments(spool: str) -> bool:
    return any(Path(spool).glob("*.seg"))


def _ready(gw: ServiceProcess) -> dict[str, Any]:
    with urllib.request.urlopen(gw.url + "/readyz", timeout=5) as r:
        data: dict[str, Any] = json.loads(r.read())
    return data


def _wait(gw: ServiceProcess, pred: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred(_ready(gw)):
            return
        time.sleep(0.1)
    raise AssertionError(_ready(gw))


async def _calls(url: str) -> list[str]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": "Bearer tok-alpha", "X-AgentWatch-Session-Id": "restart"}
    ids = []
    async with aiohttp.ClientSession() as s:
        for _ in range(N_CALLS):
            async with s.post(f"{url}/v1/proxy/openai/chat/completions", json=body, headers=headers) as r:
                assert r.status == 200
                ids.append(r.headers["X-AgentWatch-Call-Id"])
    return ids


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
async def test_spooled_events_survive_a_restart(
    gateway_factory: GatewayFactory, tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, how: str
) -> None:
    spool = str(tmp_path / "spool")
    dead_broker = f"127.0.0.1:{free_port()}"
    first = gateway_factory(
        KAFKA_BOOTSTRAP_SERVERS=dead_broker, AGENTWATCH_SPOOL_DIR=spool, AGENTWATCH_KAFKA_SEND_TIMEOUT_S="1"
    )
    ids = await _calls(first.url)
    if how == "sigkill":
        await asyncio.to_thread(_wait, first, lambda s: s["queued_events"] == 0 and s["spooled_bytes"] > 0, 20)
        first.kill()
    else:
        assert first.stop() == 0
    assert _has_segments(spool)

    second = gateway_factory(AGENTWATCH_SPOOL_DIR=spool)
    await asyncio.to_thread(_wait, second, lambda s: s["broker"] == "up" and s["spooled_bytes"] == 0, 60)

    def done(evs: list[Event]) -> bool:
        return set(ids) <= {e.call_id for e in evs if isinstance(e, CallFinished)}

    events = await read_events(kafka_bootstrap, f"{topic_prefix}calls", done)
    finished = [e.call_id for e in events if isinstance(e, CallFinished)]
    assert sorted(finished) == sorted(ids)
