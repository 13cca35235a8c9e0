"""The broker goes down in the middle of a loop: once it is back, the worker and the notifier
resume where they were and the loop still gives exactly one Slack message."""

from __future__ import annotations

import asyncio
from pathlib import Path

import localstack

from services.anomaly.delivery import Target
from services.anomaly.settings import NotifierSettings
from tests.fakes.slack import SlackReceiver
from tests.integration.anomaly_support import anomaly_worker, ensure, finished, producer, running_notifier, send


async def test_broker_restart_mid_loop_loses_and_doubles_nothing(own_kafka: localstack.Kafka, tmp_path: Path) -> None:
    bootstrap, prefix = own_kafka.bootstrap, "down."
    topics = await ensure(bootstrap, prefix)
    settings = NotifierSettings(
        kafka_bootstrap_servers=bootstrap, topic_prefix=prefix, notifier_group="down", notifier_backoff_base_s=0.05
    )
    async with SlackReceiver() as slack:
        with anomaly_worker(bootstrap, prefix, tmp_path, {}):
            async with running_notifier(settings, [Target("slack", slack.url, "slack")]):
                async with producer(bootstrap) as p:
                    for i in range(2):
                        await send(p, topics, finished("acme", "loop", i, tokens=int(1000 * 1.5**i)))
                # Everything stays up but the broker: the worker and the notifier keep retrying.
                await asyncio.to_thread(own_kafka.stop)
                await asyncio.sleep(3)
                await asyncio.to_thread(own_kafka.start)
                async with producer(bootstrap) as p:
                    for i in range(2, 6):
                        await send(p, topics, finished("acme", "loop", i, tokens=int(1000 * 1.5**i)))
                got = await slack.wait_for(1, within=90)
                assert len(got) == 1
                await asyncio.sleep(2)
    assert len(slack.delivered) == 1
    assert "acme/loop" in slack.delivered[0].body["text"]
