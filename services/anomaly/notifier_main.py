"""``agentwatch notifier``: runs the alert notifier until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal

from services.anomaly.notifier import Notifier
from services.anomaly.settings import NotifierSettings
from services.common.topics import Topics, ensure_topics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group", default=None, help="consumer group (AGENTWATCH_NOTIFIER_GROUP)")


async def serve(settings: NotifierSettings) -> None:
    topics = Topics.from_settings(settings)
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        (topics.alerts, topics.alerts_dead_letter),
        partitions=settings.topic_partitions,
        replication=settings.topic_replication,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    notifier = Notifier(settings)
    await notifier.start()
    try:
        await notifier.run(stop)
    finally:
        await notifier.stop()


def run(args: argparse.Namespace) -> int:
    settings = NotifierSettings(**({"notifier_group": args.group} if args.group else {}))
    asyncio.run(serve(settings))
    return 0
