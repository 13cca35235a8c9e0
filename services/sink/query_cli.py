"""``agentwatch query [--format json|table] "SQL"``: read-only SQL against the analytics store."""

from __future__ import annotations

import argparse
import sys

from services.sink.analytics_client import render, run_query
from services.sink.errors import QueryError
from services.sink.settings import SinkSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sql", help="the SQL (read-only: ClickHouse refuses writes and DDL)")
    parser.add_argument("--format", choices=("table", "json"), default="table")


def run(args: argparse.Namespace) -> int:
    try:
        result = run_query(SinkSettings(), args.sql)
    except QueryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(render(result, args.format))
    return 0
