"""``agentwatch budget``: runs one budget worker (a Faust worker process)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from services.budget.app import create_app
from services.budget.settings import BudgetSettings
from services.common.topics import Topics, ensure_topics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--web-port", type=int, help="Faust web port (AGENTWATCH_BUDGET_WEB_PORT, default 6066)")
    parser.add_argument("--data-dir", type=Path, help="Faust data dir (AGENTWATCH_BUDGET_DATA_DIR)")


def run(args: argparse.Namespace) -> int:
    settings = BudgetSettings()
    overrides = {
        k: v for k, v in {"budget_web_port": args.web_port, "budget_data_dir": args.data_dir}.items() if v is not None
    }
    settings = BudgetSettings.model_validate(settings.model_dump() | overrides)
    topics = Topics.from_settings(settings)
    # The source topics must exist with the same partition count before Faust assigns them.
    asyncio.run(
        ensure_topics(
            settings.kafka_bootstrap_servers,
            (topics.calls, topics.controls, topics.reservations, topics.reservation_decisions),
            partitions=settings.topic_partitions,
            replication=settings.topic_replication,
        )
    )
    settings.budget_data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    worker = app.Worker(loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
    return 0
