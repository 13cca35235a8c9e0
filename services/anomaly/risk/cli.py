"""``agentwatch risk-scan``: runs the risk worker until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from aiokafka.errors import KafkaError

from services.anomaly.risk.scanner import Scanner
from services.anomaly.risk.settings import RiskSettings
from services.anomaly.risk.worker import RiskWorker
from services.common.topics import Topics, ensure_topics

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-create-topics", action="store_true", help="do not create missing topics at start")


async def serve(settings: RiskSettings, create_topics: bool = True) -> None:
    if create_topics:
        await ensure_topics(
            settings.kafka_bootstrap_servers,
            Topics.from_settings(settings).all(),
            partitions=settings.topic_partitions,
            replication=settings.topic_replication,
        )
    worker = RiskWorker(settings, Scanner())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    consumer, producer = worker.consumer(), worker.producer()
    await producer.start()
    try:
        await consumer.start()
        try:
            log.info("risk-scan: consuming %s", Topics.from_settings(settings).payloads)
            await worker.run(consumer, producer, stop)
        finally:
            await consumer.stop()
    finally:
        # The broker may be gone at shutdown; nothing is pending (every batch was awaited).
        with contextlib.suppress(KafkaError):
            await producer.stop()


def run(args: argparse.Namespace) -> int:
    asyncio.run(serve(RiskSettings(), create_topics=not args.no_create_topics))
    return 0
