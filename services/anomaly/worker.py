"""``agentwatch anomaly``: runs the detection worker (Faust) until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio

import faust

from services.anomaly.app import create_app
from services.anomaly.settings import AnomalySettings
from services.common.topics import Topics, ensure_topics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--web-port", type=int, default=None, help="Faust web port (AGENTWATCH_ANOMALY_WEB_PORT)")
    parser.add_argument("--loglevel", default=None, help="log level (AGENTWATCH_LOG_LEVEL)")


def run(args: argparse.Namespace) -> int:
    overrides = {"anomaly_web_port": args.web_port} if args.web_port else {}
    settings = AnomalySettings(**overrides)
    topics = Topics.from_settings(settings)
    # Faust runs on the loop it finds current: make one, create the topics on it, hand it over.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(
        ensure_topics(
            settings.kafka_bootstrap_servers,
            (topics.calls, topics.alerts, topics.alerts_dead_letter, topics.controls),
            partitions=settings.topic_partitions,
            replication=settings.topic_replication,
        )
    )
    app = create_app(settings)
    worker = faust.Worker(app, loop=loop, loglevel=args.loglevel or settings.log_level)
    worker.execute_from_commandline()
