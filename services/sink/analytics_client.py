"""Read-only SQL for ``agentwatch query`` / ``report``: direct to an HTTP ClickHouse, or through
the sink's ``/query`` when the store is the embedded chdb engine (which only the sink may open)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from services.sink.ch_store import ClickHouseStore
from services.sink.errors import QueryError
from services.sink.settings import SinkSettings

Result = tuple[list[str], list[list[Any]]]


def run_query(settings: SinkSettings, sql: str, params: dict[str, Any] | None = None) -> Result:
    if settings.clickhouse_url.startswith("chdb://"):
        return _through_sink(settings, sql, params)
    import asyncio

    store = ClickHouseStore(settings)

    async def go() -> tuple[list[str], list[tuple[Any, ...]]]:
        try:
            return await store.query(sql, params)
        finally:
            await store.close()

    columns, rows = asyncio.run(go())
    return columns, [list(r) for r in rows]


def _through_sink(settings: SinkSettings, sql: str, params: dict[str, Any] | None) -> Result:
    url = f"http://127.0.0.1:{settings.sink_port}/query"
    body = json.dumps({"sql": sql, "params": params or {}}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            data = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        raise QueryError(message) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise QueryError(
            f"the sink is not reachable at {url} ({exc}); with an embedded ClickHouse (chdb://) "
            "queries go through the running sink: start it with `agentwatch sink` or `make up`"
        ) from exc
    return list(data["columns"]), [list(r) for r in data["rows"]]


def _cell(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def render(result: Result, fmt: str) -> str:
    columns, rows = result
    if fmt == "json":
        return json.dumps([dict(zip(columns, map(_cell, r), strict=True)) for r in rows], indent=2, default=str)
    cells = [[("" if v is None else str(_cell(v))) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)
