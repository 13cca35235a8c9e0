"""The ``agentwatch`` command: runs a service, creates topics, queries the analytics store.

Each subcommand lives in the module of the service it runs and is imported only when
chosen, so ``agentwatch gateway`` never loads Faust and ``agentwatch sink`` never loads
aiohttp's server.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from services.common.config import CommonSettings
from services.common.topics import Topics, ensure_topics

# name -> (module, help); the module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "budget": ("services.budget.runner", "run a budget worker (Faust: session totals table)"),
    "gateway": ("services.gateway.runner", "run the gateway (OpenAI/Anthropic proxy)"),
    "anomaly": ("services.anomaly.worker", "run the runaway-loop detection worker (Faust)"),
    "notifier": ("services.anomaly.notifier_main", "run the alert notifier (Slack, webhooks, dead-letter topic)"),
    "sink": ("services.sink.service", "run the sink: Kafka events into PostgreSQL and ClickHouse"),
    "query": ("services.sink.query_cli", "run read-only SQL against the analytics store (ClickHouse)"),
    "report": ("services.sink.report_cli", "run a ready-made analytics query (--list names them)"),
    "risk-scan": ("services.anomaly.risk.cli", "scan captured payloads for PII and secrets; publish findings"),
}


def _topics(args: argparse.Namespace) -> int:
    settings = CommonSettings()
    created = asyncio.run(
        ensure_topics(
            settings.kafka_bootstrap_servers,
            Topics.from_settings(settings).all(),
            partitions=settings.topic_partitions,
            replication=settings.topic_replication,
        )
    )
    print("created: " + (", ".join(created) if created else "nothing (all exist)"))
    return 0


def build_parser(
    chosen: str | None = None,
) -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
    """Only the chosen subcommand's module is imported; the others are listed by name."""
    parser = argparse.ArgumentParser(prog="agentwatch", description="AgentWatch services and tools")
    sub = parser.add_subparsers(dest="command", required=True)
    runners: dict[str, Callable[[argparse.Namespace], int]] = {}
    sub.add_parser("topics", help="create AgentWatch's Kafka topics (idempotent)")
    runners["topics"] = _topics
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            runners[name] = module.run
    return parser, runners


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, runners = build_parser(next((a for a in argv if not a.startswith("-")), None))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        return runners[args.command](args)
    except ValidationError as exc:
        print(f"error: invalid configuration: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
