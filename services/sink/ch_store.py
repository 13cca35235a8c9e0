"""ClickHouse, the analytics store; the same code for an HTTP server and the embedded chdb engine.

A replayed batch must not count twice, in ``llm_calls`` nor in the rollups its materialized
views feed. So before inserting, the writer asks which ids of the batch are already stored
and inserts only the others. One consumer owns a Kafka partition at a time and an insert is
visible once it returns, so that check cannot race a second writer of the same rows.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from typing import Any, TypeVar

import clickhouse_connect
import msgspec
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

from services.sink.batch import Batch
from services.sink.ch_schema import schema_statements
from services.sink.columns import ALERT_COLUMNS, CALL_COLUMNS, FINDING_COLUMNS
from services.sink.errors import QueryError, SinkError, StoreRejected, StoreUnavailable
from services.sink.settings import SinkSettings

T = TypeVar("T")
_json = msgspec.json.Encoder(decimal_format="string")
# Ids per duplicate-check query: ~100 KB of SQL at most for ids of ~40 characters.
ID_CHUNK = 2000


def connect(url: str, database: str | None = None) -> Any:
    """A clickhouse-connect client for ``http(s)://…`` or ``chdb://…``."""
    try:
        if database is None:
            return clickhouse_connect.get_client(dsn=url)
        return clickhouse_connect.get_client(dsn=url, database=database)
    except OperationalError as exc:
        raise StoreUnavailable(f"clickhouse: {exc}") from exc
    except ClickHouseError as exc:
        raise StoreRejected(f"clickhouse: {exc}") from exc


class ClickHouseStore:
    name = "clickhouse"

    def __init__(self, settings: SinkSettings) -> None:
        self._settings = settings
        self._db = settings.clickhouse_database
        self._client: Any = None
        self._reader: Any = None
        self._ready = False
        # The writer client is used from one worker thread at a time.
        self._lock = threading.Lock()
        self._reader_lock = threading.Lock()

    async def open(self) -> None:
        """Nothing to do eagerly: the first write connects, so a store that is down is retried."""

    async def close(self) -> None:
        for client in (self._client, self._reader):
            if client is not None:
                await asyncio.to_thread(client.close)
        self._client = self._reader = None

    def _ensure_ready(self) -> Any:
        if self._client is None:
            self._client = connect(self._settings.clickhouse_url)
        if not self._ready:
            for stmt in schema_statements(self._db, self._settings.clickhouse_ttl_days):
                self._client.command(stmt)
            self._ready = True
        return self._client

    async def _run(self, fn: Callable[[], T]) -> T:
        def guarded() -> T:
            with self._lock:
                try:
                    return fn()
                except OperationalError as exc:
                    self._drop_writer()
                    raise StoreUnavailable(f"clickhouse: {exc}") from exc
                except ClickHouseError as exc:
                    # A failed call can leave a chdb handle unusable: start the retry afresh.
                    self._drop_writer()
                    raise StoreRejected(f"clickhouse: {exc}") from exc

        return await asyncio.to_thread(guarded)

    def _drop_writer(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except ClickHouseError:
                pass
        self._client = None

    async def ensure_schema(self) -> None:
        await self._run(self._ensure_ready)

    async def write(self, batch: Batch) -> None:
        await self._run(lambda: self._write_sync(batch))

    def _write_sync(self, batch: Batch) -> None:
        client = self._ensure_ready()
        calls = batch.calls
        if calls:
            fresh = self._not_stored(client, "llm_calls", "call_id", calls, (c.ts.date() for c in calls.values()))
            rows = [
                (
                    c.call_id,
                    c.ts,
                    c.event_id,
                    c.tenant,
                    c.project or "",
                    c.team or "",
                    c.session_id or "",
                    c.iteration,
                    c.provider,
                    c.model or "",
                    c.endpoint,
                    c.streamed,
                    c.status_code,
                    c.outcome,
                    c.input_tokens,
                    c.output_tokens,
                    c.cached_tokens,
                    c.reasoning_tokens,
                    c.cost_usd,
                    c.price_known,
                    c.reserved_usd,
                    c.started_at,
                    c.latency_ms,
                    c.ttft_ms,
                    c.source,
                    c.gateway_id or "",
                )
                for key, c in calls.items()
                if key in fresh
            ]
            if rows:
                self._insert(client, "llm_calls", CALL_COLUMNS, rows)
        if batch.alerts:
            fresh = self._not_stored(
                client, "alerts", "alert_id", batch.alerts, (a.ts.date() for a in batch.alerts.values())
            )
            alert_rows = [
                (
                    a.alert_id,
                    a.event_id,
                    a.ts,
                    a.tenant,
                    a.session_id or "",
                    a.project or "",
                    a.team or "",
                    a.detector,
                    a.severity,
                    a.message,
                    json.dumps(a.evidence, default=str),
                    a.spent_usd,
                    a.budget_usd,
                )
                for key, a in batch.alerts.items()
                if key in fresh
            ]
            if alert_rows:
                self._insert(client, "alerts", ALERT_COLUMNS, alert_rows)
        if batch.findings:
            fresh = self._not_stored(
                client, "risk_findings", "finding_id", batch.findings, (f.ts.date() for f in batch.findings.values())
            )
            finding_rows = [
                (
                    f.finding_id,
                    f.event_id,
                    f.ts,
                    f.tenant,
                    f.session_id or "",
                    f.call_id,
                    f.location,
                    f.message_index,
                    f.finding_type,
                    f.count,
                    f.severity,
                    f.preview,
                )
                for key, f in batch.findings.items()
                if key in fresh
            ]
            if finding_rows:
                self._insert(client, "risk_findings", FINDING_COLUMNS, finding_rows)

    def _insert(self, client: Any, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        # JSON lines encoded by msgspec and parsed by ClickHouse itself: several times faster
        # than building the Native format row by row in Python. Decimals travel as strings.
        block = b"\n".join(map(_json.encode, rows))
        client.raw_insert(
            f"{self._db}.{table}",
            column_names=columns,
            insert_block=block,
            fmt="JSONCompactEachRow",
            settings={"date_time_input_format": "best_effort"},
        )

    def _not_stored(self, client: Any, table: str, id_col: str, ids: dict[str, Any], days: Iterable[date]) -> set[str]:
        day_list = sorted(set(days))
        keys = list(ids)
        present: set[str] = set()
        # Chunked so that no query outgrows ClickHouse's max_query_size, whatever the batch size.
        for i in range(0, len(keys), ID_CHUNK):
            # The day bound hits the sorting key's first column, so only the batch's days are
            # read; the ids travel as one JSON string literal, far cheaper to parse than an IN list.
            rows = client.query(
                f"SELECT {id_col} FROM {self._db}.{table} "
                f"WHERE toDate(ts) >= %(lo)s AND toDate(ts) <= %(hi)s "
                f"AND {id_col} IN (SELECT arrayJoin(JSONExtract(%(ids)s, 'Array(String)')))",
                parameters={
                    "lo": day_list[0],
                    "hi": day_list[-1],
                    "ids": _json.encode(keys[i : i + ID_CHUNK]).decode(),
                },
            ).result_rows
            present.update(row[0] for row in rows)
        return set(keys) - present

    async def query(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run read-only SQL (ClickHouse ``readonly=1``) with the sink's database as the default."""

        def run() -> tuple[list[str], list[tuple[Any, ...]]]:
            with self._reader_lock:
                try:
                    if self._reader is None:
                        self._reader = connect(self._settings.clickhouse_url, database=self._db)
                    result = self._reader.query(sql, parameters=parameters, settings={"readonly": "1"})
                    return list(result.column_names), [tuple(r) for r in result.result_rows]
                except (ClickHouseError, SinkError) as exc:
                    # A failed query can leave a chdb handle unusable: the next one gets a new one.
                    reader, self._reader = self._reader, None
                    if reader is not None:
                        try:
                            reader.close()
                        except ClickHouseError:
                            pass
                    raise QueryError(str(exc).split(" SETTINGS ")[0][:2000]) from exc

        await self.ensure_schema()
        return await asyncio.to_thread(run)
