"""The notifier on the real broker: retries until accepted, dead-letters when the receiver
stays down, and a restarted notifier resends nothing it already delivered."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from localstack import free_port

from services.anomaly.delivery import Target
from services.anomaly.settings import NotifierSettings
from services.common.events import Alert, decode, encode
from services.common.topics import Topics
from tests.fakes.slack import Reply, SlackReceiver
from tests.integration.anomaly_support import ensure, producer, running_notifier


def alert(session: str) -> Alert:
    return Alert(
        tenant="acme",
        session_id=session,
        project="checkout-service",
        team="payments-eng",
        detector="context_growth",
        severity="high",
        message="input tokens grew more than 1.4x on 3 consecutive iterations",
        evidence={"input_tokens": [1000, 1500, 2250, 3375]},
        spent_usd=Decimal("0.42"),
        budget_usd=Decimal("2"),
    )


async def publish(bootstrap: str, topics: Topics, *alerts: Alert) -> None:
    async with producer(bootstrap) as p:
        for a in alerts:
            await p.send_and_wait(topics.alerts, value=encode(a), key=a.key)


def settings(bootstrap: str, prefix: str, **kw: object) -> NotifierSettings:
    return NotifierSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        notifier_group=f"{prefix}notifier",
        notifier_backoff_base_s=0.05,
        notifier_backoff_max_s=0.2,
        notifier_timeout_s=2,
        **kw,  # type: ignore[arg-type]
    )


async def test_500_then_429_then_200_delivers_exactly_once_and_restart_resends_nothing(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topics = await ensure(kafka_bootstrap, topic_prefix)
    first = alert("s1")
    await publish(kafka_bootstrap, topics, first)
    s = settings(kafka_bootstrap, topic_prefix)
    async with SlackReceiver(script=[Reply(500), Reply(429, retry_after="1")]) as r:
        target = [Target("slack", r.url, "slack")]
        async with running_notifier(s, target) as n:
            delivered = await r.wait_for(1, within=30)
            await asyncio.sleep(1.5)
        assert [a.status for a in r.attempts] == [500, 429, 200]
        assert len(delivered) == 1 and n.delivered == 1 and n.dead_lettered == 0
        assert delivered[0].headers["X-AgentWatch-Alert-Id"] == first.alert_id
        assert "acme/s1" in delivered[0].body["text"] and delivered[0].body["blocks"]
        # A restart of the same group: the delivered alert is not sent again; a new one is.
        second = alert("s2")
        await publish(kafka_bootstrap, topics, second)
        async with running_notifier(s, target):
            await r.wait_for(2, within=30)
            await asyncio.sleep(1.5)
    assert [m.headers["X-AgentWatch-Alert-Id"] for m in r.delivered] == [first.alert_id, second.alert_id]


async def dead_letters(bootstrap: str, topics: Topics, count: int) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(
        topics.alerts_dead_letter, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        async with asyncio.timeout(30):
            while len(records) < count:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def test_receiver_down_for_the_whole_budget_dead_letters_the_alert(
    kafka_bootstrap: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    topics = await ensure(kafka_bootstrap, topic_prefix)
    lost = alert("down")
    await publish(kafka_bootstrap, topics, lost)
    s = settings(kafka_bootstrap, topic_prefix, notifier_max_attempts=3)
    dead = f"http://127.0.0.1:{free_port()}/services/T/B/X"
    async with SlackReceiver() as webhook:
        targets = [Target("slack", dead, "slack"), Target("webhook[0]", webhook.url, "webhook")]
        async with running_notifier(s, targets):
            records = await dead_letters(kafka_bootstrap, topics, 1)
    assert len(records) == 1
    dlq = decode(records[0].value)
    assert isinstance(dlq, Alert) and dlq.alert_id == lost.alert_id
    headers = dict(records[0].headers)
    assert headers["agentwatch-target"] == b"slack"
    assert b"ClientConnectorError" in headers["agentwatch-error"] or b"Connect" in headers["agentwatch-error"]
    # The healthy generic webhook got the alert event itself, once.
    assert len(webhook.delivered) == 1 and webhook.delivered[0].body["alert_id"] == lost.alert_id
    # The Slack webhook URL is a secret: its path is in no log line and no DLQ header.
    assert "/services/T/B/X" not in caplog.text and b"/services/T/B/X" not in b"".join(headers.values())


async def test_undecodable_alert_goes_to_the_dead_letter_topic(kafka_bootstrap: str, topic_prefix: str) -> None:
    topics = await ensure(kafka_bootstrap, topic_prefix)
    async with producer(kafka_bootstrap) as p:
        await p.send_and_wait(topics.alerts, value=b"{not json", key=b"acme/x")
    await publish(kafka_bootstrap, topics, alert("after"))
    async with (
        SlackReceiver() as r,
        running_notifier(settings(kafka_bootstrap, topic_prefix), [Target("s", r.url, "slack")]),
    ):
        got = await r.wait_for(1, within=30)
    assert len(got) == 1 and "acme/after" in got[0].body["text"]
    [bad] = await dead_letters(kafka_bootstrap, topics, 1)
    assert bad.value == b"{not json" and dict(bad.headers)["agentwatch-target"] == b"decode"


async def test_second_notifier_joining_the_group_resends_nothing(kafka_bootstrap: str, topic_prefix: str) -> None:
    """A rebalance mid-stream: the revoke listener commits what was delivered, so the new
    owner of a partition starts after it; every alert arrives exactly once."""
    topics = await ensure(kafka_bootstrap, topic_prefix)
    alerts = [alert(f"r{i}") for i in range(24)]
    await publish(kafka_bootstrap, topics, *alerts)
    s = settings(kafka_bootstrap, topic_prefix)
    # A slow Slack, so the second notifier joins while the first is mid-stream.
    async with SlackReceiver(script=[Reply(delay_s=0.2) for _ in alerts]) as r:
        target = [Target("slack", r.url, "slack")]
        async with running_notifier(s, target):
            await r.wait_for(4, within=30)
            async with running_notifier(s, target):
                await r.wait_for(len(alerts), within=60)
                await asyncio.sleep(1.5)
    ids = [m.headers["X-AgentWatch-Alert-Id"] for m in r.delivered]
    assert sorted(ids) == sorted(a.alert_id for a in alerts)
    assert len(r.script) == 0  # every delivery was a slow one, so the rebalance happened mid-stream
