"""The sink's HTTP side (loopback): ``/healthz``, ``/metrics`` and read-only ``/query`` for the embedded store.

Only one process may open a chdb path and the sink owns it, so ``agentwatch query`` goes
through here when ``CLICKHOUSE_URL`` is ``chdb://``. Every query runs with ClickHouse's
``readonly=1``: writes and DDL are refused by the engine itself.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.sink.appkeys import CLICKHOUSE, CONSUMERS, METRICS
from services.sink.errors import QueryError

MAX_SQL_BYTES = 100_000


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "status": status}}, status=status)


async def healthz(request: web.Request) -> web.Response:
    consumers = request.app[CONSUMERS]
    body = {
        name: {
            "records": c.stats.records,
            "bad_records": c.stats.bad_records,
            "rejected_events": c.stats.rejected_events,
            "dead_letters": c.stats.dead_letters,
            "rows_written": c.stats.rows_written,
            "batches": c.stats.batches,
            "retries": c.stats.retries,
            "store_down": c.stats.store_down,
            "last_error": c.stats.last_error,
        }
        for name, c in consumers.items()
    }
    return web.json_response({"status": "ok", "consumers": body})


async def metrics(request: web.Request) -> web.Response:
    data = generate_latest(request.app[METRICS])
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def query(request: web.Request) -> web.Response:
    params: dict[str, Any] = {}
    if request.method == "GET":
        sql = request.query.get("sql", "")
    else:
        raw = await request.read()
        if len(raw) > MAX_SQL_BYTES:
            return _error(413, f"query larger than {MAX_SQL_BYTES} bytes")
        if request.content_type == "application/json":
            try:
                body = json.loads(raw)
            except ValueError:
                return _error(400, "body is not valid JSON")
            if not isinstance(body, dict) or not isinstance(body.get("sql"), str):
                return _error(400, 'JSON body must be {"sql": "...", "params": {...}}')
            sql = body["sql"]
            if not isinstance(body.get("params", {}), dict):
                return _error(400, "params must be an object")
            params = body.get("params") or {}
        else:
            sql = raw.decode(errors="replace")
    if not sql.strip():
        return _error(400, "no SQL given (GET ?sql=… or POST the SQL as the body)")
    try:
        columns, rows = await request.app[CLICKHOUSE].query(sql, params or None)
    except QueryError as exc:
        return _error(400, str(exc))
    text = json.dumps({"columns": columns, "rows": rows}, default=_json_default)
    return web.Response(text=text, content_type="application/json")
