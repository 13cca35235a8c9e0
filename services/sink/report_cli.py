"""``agentwatch report NAME [--param k=v]``: the ready-made analytics queries (``--list`` names them)."""

from __future__ import annotations

import argparse
import sys

from services.sink.analytics_client import render, run_query
from services.sink.errors import QueryError
from services.sink.reports import REPORTS
from services.sink.settings import SinkSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="the report to run; omit (or --list) to list them")
    parser.add_argument("--list", action="store_true", help="list the reports and exit")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a report parameter")
    parser.add_argument("--format", choices=("table", "json"), default="table")


def run(args: argparse.Namespace) -> int:
    if args.list or not args.name:
        for report in REPORTS.values():
            extra = f" (params: {', '.join(report.params)})" if report.params else ""
            print(f"{report.name:28} {report.description}{extra}")
        return 0
    if args.name not in REPORTS:
        print(f"error: no report {args.name!r}; `agentwatch report --list` names them", file=sys.stderr)
        return 2
    report = REPORTS[args.name]
    params: dict[str, str] = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"error: --param {item!r} is not KEY=VALUE", file=sys.stderr)
            return 2
        params[key] = value
    missing = [p for p in report.params if p not in params]
    if missing:
        print(f"error: report {report.name} needs --param {missing[0]}=…", file=sys.stderr)
        return 2
    try:
        result = run_query(SinkSettings(), report.sql, params or None)
    except QueryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(render(result, args.format))
    return 0
