"""ClickHouse, the analytics store; the same code for an HTTP server and the embedded chdb engine.

A replayed batch must not count twice, in ``llm_calls`` nor in the rollups its materialized
views feed. So each table's rows go first into a staging table of the writer's session
(``TEMPORARY … ENGINE = Memory``, so no view sees them), as one Arrow block; then one
``INSERT … SELECT`` moves only the ids the table does not hold yet. The duplicate check runs
inside the engine: no id list travels through Python or SQL text. One consumer owns a Kafka
partition at a time and an insert is visible once it returns, so that check cannot race a
second writer of the same rows.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import clickhouse_connect
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

from services.sink import ch_arrow
from services.sink.batch import Batch
from services.sink.ch_schema import schema_statements
from services.sink.errors import QueryError, SinkError, StoreDataError, StoreRejected, StoreUnavailable
from services.sink.settings import SinkSettings

T = TypeVar("T")
log = logging.getLogger(__name__)

# ClickHouse error codes that mean "this value cannot go into this column": the same rows fail
# again on every retry. Anything else (a lost connection, a full disk, a missing table) is
# retried as it is.
DATA_ERROR_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
        407,  # DECIMAL_OVERFLOW
    }
)
_CODE = re.compile(r"Code: (\d+)\.")


def error_code(exc: BaseException) -> int | None:
    m = _CODE.search(str(exc))
    return int(m.group(1)) if m else None


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


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    id_col: str
    columns: tuple[ch_arrow.ArrowColumn, ...]
    rows: Callable[[Batch], dict[str, Any]]

    @property
    def stage(self) -> str:
        return f"_aw_stage_{self.name}"

    def move_sql(self, db: str) -> str:
        cols = ", ".join(c.name for c in self.columns)
        return (
            f"INSERT INTO {db}.{self.name} ({cols}) SELECT {cols} FROM {self.stage} "
            f"WHERE {self.id_col} NOT IN (SELECT {self.id_col} FROM {db}.{self.name} "
            # The day bounds hit the sorting key's first column: only the batch's days are read.
            f"WHERE toDate(ts) >= (SELECT min(toDate(ts)) FROM {self.stage}) "
            f"AND toDate(ts) <= (SELECT max(toDate(ts)) FROM {self.stage}) "
            f"AND {self.id_col} IN (SELECT {self.id_col} FROM {self.stage})) "
            # The rows are unique already (the batch keys them by id, and the filter above):
            # the engine's own in-block deduplication would only cost a third of the insert.
            "SETTINGS optimize_on_insert = 0"
        )


TABLES = (
    _Table("llm_calls", "call_id", ch_arrow.CALLS, lambda b: b.calls),
    _Table("alerts", "alert_id", ch_arrow.ALERTS, lambda b: b.alerts),
    _Table("risk_findings", "finding_id", ch_arrow.FINDINGS, lambda b: b.findings),
)


class ClickHouseStore:
    name = "clickhouse"

    def __init__(self, settings: SinkSettings) -> None:
        self._settings = settings
        self._db = settings.clickhouse_database
        self._client: Any = None
        self._reader: Any = None
        self._schema_ready = False
        # The writer client is used from one worker thread at a time.
        self._lock = threading.Lock()
        self._reader_lock = threading.Lock()

    async def open(self) -> None:
        """Connect and create the schema now if the store is up; if it is down, the first write
        connects (and is retried), so the sink still starts."""
        await asyncio.to_thread(ch_arrow.warm_up)
        try:
            await self.ensure_schema()
        except SinkError as exc:
            log.warning("clickhouse not ready at start, the first write will retry: %s", exc)

    async def close(self) -> None:
        for client in (self._client, self._reader):
            if client is not None:
                await asyncio.to_thread(client.close)
        self._client = self._reader = None

    def _ensure_ready(self) -> Any:
        if self._client is None:
            client = connect(self._settings.clickhouse_url)
            if not self._schema_ready:
                for stmt in schema_statements(self._db, self._settings.clickhouse_ttl_days):
                    client.command(stmt)
                self._schema_ready = True
            # Temporary tables belong to the client's session: made again with every new client.
            for table in TABLES:
                client.command(
                    f"CREATE TEMPORARY TABLE IF NOT EXISTS {table.stage} AS {self._db}.{table.name} ENGINE = Memory"
                )
            self._client = client
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
                    if error_code(exc) in DATA_ERROR_CODES:
                        raise StoreDataError(f"clickhouse: {_first_line(exc)}") from exc
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
        # A database dropped under us is created again by the next client.
        self._schema_ready = False

    async def ensure_schema(self) -> None:
        await self._run(self._ensure_ready)

    async def write(self, batch: Batch) -> None:
        await self._run(lambda: self._write_sync(batch))

    def _write_sync(self, batch: Batch) -> None:
        client = self._ensure_ready()
        for table in TABLES:
            rows = table.rows(batch)
            if rows:
                self._insert_new(client, table, list(rows.values()))

    def _insert_new(self, client: Any, table: _Table, events: Sequence[Any]) -> None:
        block = ch_arrow.arrow_stream(table.columns, events)
        # Left over from a write that failed half-way, if any.
        client.command(f"TRUNCATE TABLE {table.stage}")
        client.raw_insert(
            table.stage,
            column_names=[c.name for c in table.columns],
            insert_block=block.to_pybytes(),
            fmt="ArrowStream",
        )
        client.command(table.move_sql(self._db))

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


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().split("\n", 1)[0][:500]
