"""PostgreSQL, the system of record: COPY into a staging table, then one idempotent INSERT.

Every table is written as ``COPY`` into a temporary staging table followed by
``INSERT … SELECT … ON CONFLICT DO NOTHING``, so a replayed batch adds nothing. Session
totals are folded in the same statement from the ``RETURNING`` rows of ``llm_calls``: only a
call actually inserted now adds to its session, which keeps the totals replay-safe.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from services.sink import pg_partitions
from services.sink.batch import Batch
from services.sink.columns import ALERT_COLUMNS, CALL_COLUMNS, FINDING_COLUMNS
from services.sink.errors import StoreDataError, StoreRejected, StoreUnavailable
from services.sink.pg_copy import call_copy_line, copy_line
from services.sink.pg_migrations import apply_migrations, load_migrations
from services.sink.settings import SinkSettings

log = logging.getLogger(__name__)

PAYLOAD_COLUMNS = (
    "event_id",
    "call_id",
    "ts",
    "tenant",
    "session_id",
    "provider",
    "endpoint",
    "request_body",
    "response_body",
    "truncated",
)

_SESSIONS_FROM_INSERTED = f"""
WITH ins AS (
    INSERT INTO llm_calls ({", ".join(CALL_COLUMNS)})
    SELECT {", ".join(CALL_COLUMNS)} FROM _stage_llm_calls
    ON CONFLICT DO NOTHING
    RETURNING tenant, session_id, project, team, iteration, prompt_tokens, completion_tokens,
              cached_tokens, reasoning_tokens, cost_usd, status_code, ts
)
INSERT INTO sessions AS s (tenant, session_id, project, team, calls, max_iteration, prompt_tokens,
                           completion_tokens, cached_tokens, reasoning_tokens, cost_usd, unpriced_calls,
                           error_calls, first_ts, last_ts)
SELECT tenant, session_id,
       max(project), max(team),
       count(*), max(iteration), sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens),
       sum(reasoning_tokens), coalesce(sum(cost_usd), 0), count(*) FILTER (WHERE cost_usd IS NULL),
       count(*) FILTER (WHERE status_code >= 400), min(ts), max(ts)
FROM ins
WHERE session_id IS NOT NULL
GROUP BY tenant, session_id
ON CONFLICT (tenant, session_id) DO UPDATE SET
    project = coalesce(EXCLUDED.project, s.project),
    team = coalesce(EXCLUDED.team, s.team),
    calls = s.calls + EXCLUDED.calls,
    max_iteration = greatest(s.max_iteration, EXCLUDED.max_iteration),
    prompt_tokens = s.prompt_tokens + EXCLUDED.prompt_tokens,
    completion_tokens = s.completion_tokens + EXCLUDED.completion_tokens,
    cached_tokens = s.cached_tokens + EXCLUDED.cached_tokens,
    reasoning_tokens = s.reasoning_tokens + EXCLUDED.reasoning_tokens,
    cost_usd = s.cost_usd + EXCLUDED.cost_usd,
    unpriced_calls = s.unpriced_calls + EXCLUDED.unpriced_calls,
    error_calls = s.error_calls + EXCLUDED.error_calls,
    first_ts = least(s.first_ts, EXCLUDED.first_ts),
    last_ts = greatest(s.last_ts, EXCLUDED.last_ts)
"""


def _cap(text: str | None, limit: int) -> tuple[str | None, bool]:
    if text is None or len(text) <= limit:
        return text, False
    return text[:limit], True


class PostgresStore:
    name = "postgres"

    def __init__(self, settings: SinkSettings, conninfo: str | None = None) -> None:
        self._settings = settings
        self._pool = AsyncConnectionPool(
            conninfo or settings.database_url,
            min_size=1,
            max_size=settings.pg_pool_max,
            open=False,
            timeout=10.0,
            # A connection that died with the server is found and replaced before use.
            check=AsyncConnectionPool.check_connection,
            kwargs={"autocommit": False},
        )
        self._ready = False
        self._opened = False
        self._partitions: set[date] = set()

    async def open(self) -> None:
        # Does not wait for the server: a sink started while PostgreSQL is down still runs,
        # and the first write finds out (and retries).
        if not self._opened:
            await self._pool.open(wait=False)
            self._opened = True

    async def close(self) -> None:
        await self._pool.close()

    async def _ensure_ready(self) -> None:
        if self._ready:
            return
        async with self._pool.connection() as conn:
            await apply_migrations(conn, load_migrations())
            self._partitions = await pg_partitions.existing_partitions(conn)
            await conn.commit()
        await self.ensure_partitions(self._ahead())
        self._ready = True

    def _ahead(self) -> set[date]:
        today = datetime.now(UTC).date()
        return {today + timedelta(days=i) for i in range(self._settings.partitions_ahead_days + 1)}

    async def ensure_partitions(self, days: set[date]) -> None:
        missing = days - self._partitions
        if not missing:
            return
        async with self._pool.connection() as conn:
            await conn.set_autocommit(True)
            try:
                await pg_partitions.create_partitions(conn, missing)
            finally:
                await conn.set_autocommit(False)
        self._partitions |= missing

    async def write(self, batch: Batch) -> None:
        try:
            await self._ensure_ready()
            await self.ensure_partitions({pg_partitions.day_of(c.ts) for c in batch.calls.values()})
            async with self._pool.connection() as conn, conn.transaction():
                await self._write_calls(conn, batch)
                await self._copy_insert(conn, "alerts", ALERT_COLUMNS, self._alert_rows(batch))
                await self._copy_insert(conn, "risk_findings", FINDING_COLUMNS, self._finding_rows(batch))
                if self._settings.store_payloads:
                    await self._copy_insert(conn, "payloads", PAYLOAD_COLUMNS, self._payload_rows(batch))
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            raise StoreUnavailable(f"postgres: {exc}") from exc
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            # A value out of range or a failed constraint: the same rows fail again. A row
            # whose partition retention dropped meanwhile lands here too, hence the reset:
            # the bisecting retries make the partition again and go through.
            self._ready = False
            raise StoreDataError(f"postgres: {exc}") from exc
        except psycopg.Error as exc:
            self._ready = False
            raise StoreRejected(f"postgres: {exc}") from exc

    async def _stage(self, conn: psycopg.AsyncConnection[Any], table: str, columns: Sequence[str], text: str) -> None:
        # One staging table per connection, emptied at every commit.
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS _stage_{table} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        async with conn.cursor() as cur, cur.copy(f"COPY _stage_{table} ({', '.join(columns)}) FROM STDIN") as copy:
            # COPY's text format built by the caller in one pass: several times faster than write_row.
            await copy.write(text.encode())

    async def _write_calls(self, conn: psycopg.AsyncConnection[Any], batch: Batch) -> None:
        if not batch.calls:
            return
        text = "".join(map(call_copy_line, batch.calls.values()))
        await self._stage(conn, "llm_calls", CALL_COLUMNS, text)
        await conn.execute(_SESSIONS_FROM_INSERTED)

    async def _copy_insert(
        self, conn: psycopg.AsyncConnection[Any], table: str, columns: Sequence[str], rows: list[Any]
    ) -> None:
        if not rows:
            return
        await self._stage(conn, table, columns, "".join(map(copy_line, rows)))
        cols = ", ".join(columns)
        await conn.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _stage_{table} ON CONFLICT DO NOTHING")

    @staticmethod
    def _alert_rows(batch: Batch) -> list[Any]:
        return [
            (
                a.alert_id,
                a.event_id,
                a.ts,
                a.tenant,
                a.session_id,
                a.project,
                a.team,
                a.detector,
                a.severity,
                a.message,
                Jsonb(a.evidence),
                a.spent_usd,
                a.budget_usd,
            )
            for a in batch.alerts.values()
        ]

    @staticmethod
    def _finding_rows(batch: Batch) -> list[Any]:
        return [
            (
                f.finding_id,
                f.event_id,
                f.ts,
                f.tenant,
                f.session_id,
                f.call_id,
                f.location,
                f.message_index,
                f.finding_type,
                f.count,
                f.severity,
                f.preview,
            )
            for f in batch.findings.values()
        ]

    def _payload_rows(self, batch: Batch) -> list[Any]:
        limit = self._settings.payload_max_chars
        rows = []
        for p in batch.payloads.values():
            request, cut_req = _cap(p.request_body, limit)
            response, cut_resp = _cap(p.response_body, limit)
            rows.append(
                (
                    p.event_id,
                    p.call_id,
                    p.ts,
                    p.tenant,
                    p.session_id,
                    p.provider,
                    p.endpoint,
                    request,
                    response,
                    p.truncated or cut_req or cut_resp,
                )
            )
        return rows

    async def apply_retention(self, today: date | None = None) -> list[date]:
        """Drop the partitions older than the window and create the ones ahead; returns the dropped days."""
        try:
            await self._ensure_ready()
            today = today or datetime.now(UTC).date()
            async with self._pool.connection() as conn:
                await conn.set_autocommit(True)
                try:
                    present = await pg_partitions.existing_partitions(conn)
                    old = pg_partitions.expired(present, today, self._settings.retention_days)
                    await pg_partitions.drop_partitions(conn, old)
                finally:
                    await conn.set_autocommit(False)
            self._partitions = present - set(old)
            await self.ensure_partitions(self._ahead())
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            raise StoreUnavailable(f"postgres: {exc}") from exc
        except psycopg.Error as exc:
            raise StoreRejected(f"postgres: {exc}") from exc
        if old:
            log.info("retention: dropped llm_calls partitions %s", ", ".join(map(str, old)))
        return old
