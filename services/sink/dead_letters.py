"""Dead letters: records the sink cannot store, kept in PostgreSQL's ``sink_dead_letters``.

A record lands here when its bytes do not decode as an event, or when a store refuses the
event's data for good (``StoreDataError``, after bisecting its batch down to that one event).
Both consumers write here, each with its own ``store`` name, before committing the offsets
past the record: a dead letter is as durable as a stored row. Writes are idempotent by
``(topic, partition, offset, store)``, so a replayed batch adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from services.sink.errors import StoreRejected, StoreUnavailable
from services.sink.pg_migrations import apply_migrations, load_migrations

# Longer error texts (a ClickHouse message quoting a whole row) are cut.
MAX_ERROR_CHARS = 2000

_INSERT = (
    'INSERT INTO sink_dead_letters (topic, partition, "offset", store, error, raw_event, event_type, event_id) '
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    store: str
    error: str
    raw: bytes | None
    event_type: str | None = None
    event_id: str | None = None

    def params(self) -> tuple[object, ...]:
        error = self.error.replace("\x00", "")[:MAX_ERROR_CHARS]
        return (self.topic, self.partition, self.offset, self.store, error, self.raw, self.event_type, self.event_id)


class DeadLetterStore:
    """Writes dead letters; raises ``StoreUnavailable`` while PostgreSQL is down (the caller retries)."""

    def __init__(self, database_url: str) -> None:
        self._pool = AsyncConnectionPool(
            database_url,
            min_size=0,
            max_size=1,
            open=False,
            timeout=10.0,
            check=AsyncConnectionPool.check_connection,
            kwargs={"autocommit": False},
        )
        self._opened = False
        self._ready = False

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()
            self._opened = False

    async def write(self, letters: Sequence[DeadLetter]) -> int:
        """Store ``letters``; returns how many were new (a replay finds them there already)."""
        if not letters:
            return 0
        try:
            if not self._opened:
                await self._pool.open(wait=False)
                self._opened = True
            async with self._pool.connection() as conn:
                if not self._ready:
                    await apply_migrations(conn, load_migrations())
                    self._ready = True
                new = 0
                async with conn.transaction(), conn.cursor() as cur:
                    for letter in letters:
                        await cur.execute(_INSERT, letter.params())
                        new += cur.rowcount
                return new
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            raise StoreUnavailable(f"postgres (dead letters): {exc}") from exc
        except psycopg.Error as exc:
            self._ready = False
            raise StoreRejected(f"postgres (dead letters): {exc}") from exc
