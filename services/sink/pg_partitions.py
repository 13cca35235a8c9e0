"""Daily partitions of ``llm_calls``: created ahead of the rows, dropped whole by retention.

Retention never deletes rows: a partition whose whole day lies before the window is dropped,
which frees its space at once and leaves no bloat behind.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

_PARTITION = re.compile(r"^llm_calls_p(\d{8})$")


def partition_name(day: date) -> str:
    return f"llm_calls_p{day:%Y%m%d}"


def day_of(ts: datetime) -> date:
    return ts.astimezone(UTC).date()


async def existing_partitions(conn: psycopg.AsyncConnection[object]) -> set[date]:
    cur = await conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'llm_calls'::regclass"
    )
    days: set[date] = set()
    rows: list[Any] = await cur.fetchall()
    for row in rows:
        m = _PARTITION.match(str(row[0]))
        if m:
            days.add(datetime.strptime(m.group(1), "%Y%m%d").replace(tzinfo=UTC).date())
    return days


async def create_partitions(conn: psycopg.AsyncConnection[object], days: set[date]) -> None:
    for day in sorted(days):
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        end = start + timedelta(days=1)
        # Values are dates we computed, never input: formatting them in is safe (DDL takes no parameters).
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF llm_calls "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')".encode()
        )


def expired(days: set[date], today: date, retention_days: int) -> list[date]:
    """Days whose partition lies wholly before the window ``[today - retention_days, …)``."""
    cutoff = today - timedelta(days=retention_days)
    return sorted(d for d in days if d < cutoff)


async def drop_partitions(conn: psycopg.AsyncConnection[object], days: list[date]) -> None:
    for day in days:
        # DETACH first so that readers of the parent never wait on the DROP's lock for long.
        await conn.execute(f"ALTER TABLE llm_calls DETACH PARTITION {partition_name(day)}")
        await conn.execute(f"DROP TABLE {partition_name(day)}")
