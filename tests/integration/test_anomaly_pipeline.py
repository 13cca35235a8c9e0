"""Calls events on the real broker → the real detection worker process → alerts topic →
the real notifier → the local Slack receiver. One worker serves the module; each test uses
its own session (and tenant, for per-tenant thresholds)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from services.anomaly.delivery import Target
from services.anomaly.settings import NotifierSettings
from services.common.events import Control, decode
from services.common.topics import Topics
from tests.fakes.slack import Received, SlackReceiver
from tests.integration.anomaly_support import Worker, anomaly_worker, ensure, finished, producer, send, started

POLICIES: dict[str, Any] = {
    "strict": {
        "detectors": {
            "max_calls_per_minute": 5,
            "max_usd_per_minute": "0.05",
            "error_loop_count": 3,
            "repetition_count": 3,
        }
    },
    "pauser": {"loop_policy": "pause"},
}


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"an{uuid.uuid4().hex[:8]}."


@pytest.fixture(scope="module")
def worker(kafka_bootstrap: str, prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    asyncio.run(ensure(kafka_bootstrap, prefix))
    with anomaly_worker(kafka_bootstrap, prefix, tmp_path_factory.mktemp("anomaly"), POLICIES) as w:
        yield w


@pytest.fixture(scope="module")
async def slack(worker: Worker, kafka_bootstrap: str, prefix: str) -> AsyncIterator[SlackReceiver]:
    from tests.integration.anomaly_support import running_notifier

    settings = NotifierSettings(
        kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, notifier_group=f"{prefix}notifier"
    )
    async with SlackReceiver() as receiver, running_notifier(settings, [Target("slack", receiver.url, "slack")]):
        yield receiver


def of_session(receiver: SlackReceiver, tenant: str, session: str) -> list[Received]:
    return [m for m in receiver.delivered if f"session {tenant}/{session}" in m.body["text"]]


async def wait_session(receiver: SlackReceiver, tenant: str, session: str, count: int, within: float) -> list[Received]:
    return await receiver.wait_for(count, within, lambda m: f"session {tenant}/{session}" in m.body["text"])


def detector_of(m: Received) -> str:
    return str(m.body["blocks"][0]["text"]["text"])


async def test_growth_loop_1_5x_gives_exactly_one_slack_message(
    slack: SlackReceiver, kafka_bootstrap: str, prefix: str
) -> None:
    topics = Topics.with_prefix(prefix)
    session = f"grow-{uuid.uuid4().hex[:6]}"
    third_growth_at = 0.0
    async with producer(kafka_bootstrap) as p:
        for i in range(8):
            await send(p, topics, started("acme", session, i, budget="100"))
            await send(p, topics, finished("acme", session, i, tokens=int(1000 * 1.5**i)))
            if i == 3:
                third_growth_at = time.monotonic()
                got = await wait_session(slack, "acme", session, 1, within=30)
                assert len(got) == 1
    # Growth went on for four more iterations: still one message (cooldown), none doubled.
    await asyncio.sleep(2)
    got = of_session(slack, "acme", session)
    assert len(got) == 1
    assert "context growth" in detector_of(got[0])
    assert "payments-eng" in str(got[0].body) and "checkout-service" in str(got[0].body)
    # Measured, not asserted (timing never gates a test): see bench/RESULTS.md.
    print(f"third growth -> Slack: {got[0].at - third_growth_at:.3f}s")


async def test_growth_loop_1_2x_gives_no_growth_alert(slack: SlackReceiver, kafka_bootstrap: str, prefix: str) -> None:
    topics = Topics.with_prefix(prefix)
    session = f"slow-{uuid.uuid4().hex[:6]}"
    async with producer(kafka_bootstrap) as p:
        for i in range(8):
            await send(p, topics, finished("acme", session, i, tokens=int(1000 * 1.2**i)))
        # A sentinel on the same partition: once its alert is in, every earlier event was judged.
        for i in range(8, 13):
            await send(p, topics, finished("acme", session, i, tokens=5000, status=500))
    got = await wait_session(slack, "acme", session, 1, within=30)
    await asyncio.sleep(1)
    got = of_session(slack, "acme", session)
    assert [detector_of(m) for m in got] == [":rotating_light: AgentWatch: error loop (high)"]


@pytest.mark.parametrize(
    ("name", "calls"),
    [
        ("velocity", [{"tokens": 100} for _ in range(6)]),
        ("repetition", [{"fingerprint": "same"} for _ in range(3)]),
        ("spend velocity", [{"cost": "0.03"} for _ in range(2)]),
        ("error loop", [{"status": 502} for _ in range(3)]),
        ("early warning", [{"cost": "0.01"}, {"cost": "0.02"}]),
    ],
)
async def test_each_detector_end_to_end(
    slack: SlackReceiver, kafka_bootstrap: str, prefix: str, name: str, calls: list[dict[str, Any]]
) -> None:
    topics = Topics.with_prefix(prefix)
    session = f"{name.replace(' ', '')}-{uuid.uuid4().hex[:6]}"
    async with producer(kafka_bootstrap) as p:
        for i, kw in enumerate(calls):
            # Only the early-warning case has a budget: the others must fire alone.
            budget = "0.10" if name == "early warning" else None
            await send(p, topics, started("strict", session, i, budget=budget))
            await send(p, topics, finished("strict", session, i, **kw))
    got = await wait_session(slack, "strict", session, 1, within=30)
    await asyncio.sleep(1)
    got = of_session(slack, "strict", session)
    assert len(got) == 1, [detector_of(m) for m in got]
    assert f"AgentWatch: {name} (" in detector_of(got[0])


async def test_pause_policy_emits_a_pause_control(slack: SlackReceiver, kafka_bootstrap: str, prefix: str) -> None:
    topics = Topics.with_prefix(prefix)
    session = f"pause-{uuid.uuid4().hex[:6]}"
    async with producer(kafka_bootstrap) as p:
        for i in range(5):
            await send(p, topics, finished("pauser", session, i, tokens=int(1000 * 1.5**i)))
    assert len(await wait_session(slack, "pauser", session, 1, within=30)) == 1
    consumer = AIOKafkaConsumer(
        topics.controls, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    controls: list[Control] = []
    try:
        async with asyncio.timeout(15):
            while not controls:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        ev = decode(r.value)
                        if isinstance(ev, Control) and ev.session_id == session:
                            controls.append(ev)
    finally:
        await consumer.stop()
    assert [(c.action, c.tenant, c.actor) for c in controls] == [("pause", "pauser", "anomaly")]


async def test_restarted_worker_does_not_alert_again(
    kafka_bootstrap: str, unique: str, tmp_path: Path, slack: SlackReceiver
) -> None:
    """The cooldown lives in the table: a new worker rebuilds it from the changelog."""
    prefix = f"{unique}."
    topics = await ensure(kafka_bootstrap, prefix)
    session = "restart"
    settings = NotifierSettings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, notifier_group=unique)
    from tests.integration.anomaly_support import running_notifier

    async with SlackReceiver() as receiver, running_notifier(settings, [Target("slack", receiver.url, "slack")]):
        async with producer(kafka_bootstrap) as p:
            with anomaly_worker(kafka_bootstrap, prefix, tmp_path, {}):
                for i in range(4):
                    await send(p, topics, finished("acme", session, i, tokens=int(1000 * 1.5**i)))
                assert len(await receiver.wait_for(1, within=30)) == 1
            with anomaly_worker(kafka_bootstrap, prefix, tmp_path, {}):
                for i in range(4, 7):
                    await send(p, topics, finished("acme", session, i, tokens=int(1000 * 1.5**i)))
                # Another session's alert proves the new worker is processing.
                for i in range(3):
                    await send(p, topics, finished("acme", "probe", i, status=500, tokens=1))
                for i in range(3, 5):
                    await send(p, topics, finished("acme", "probe", i, status=500, tokens=1))
                assert len(await receiver.wait_for(2, within=45)) == 2
        await asyncio.sleep(1)
    assert [m.body["text"].rsplit("session ", 1)[1] for m in receiver.delivered] == ["acme/restart", "acme/probe"]
