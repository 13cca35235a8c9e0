"""The real stores: a PostgreSQL round trip, and a ClickHouse MergeTree through the chdb DSN."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import clickhouse_connect
import psycopg


async def test_postgres_round_trip(pg_database: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_database) as conn:
        await conn.execute("CREATE TABLE t (id int PRIMARY KEY, cost numeric(20, 9), at timestamptz)")
        async with conn.cursor() as cur, cur.copy("COPY t (id, cost, at) FROM STDIN") as copy:
            for i in range(1000):
                await copy.write_row((i, Decimal("0.000000001") * i, "2026-12-03T00:00:00Z"))
        await conn.commit()
        row = await (await conn.execute("SELECT count(*), sum(cost) FROM t")).fetchone()
    assert row == (1000, Decimal("0.000499500"))


def test_clickhouse_mergetree_through_chdb(clickhouse_url: str, unique: str) -> None:
    client = clickhouse_connect.get_client(dsn=clickhouse_url)
    client.command(f"CREATE DATABASE IF NOT EXISTS {unique}")
    client.command(
        f"CREATE TABLE {unique}.calls (ts DateTime64(3, 'UTC'), model LowCardinality(String), "
        "tokens UInt32, cost Decimal(18, 9)) ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (model, ts)"
    )
    day = datetime(2026, 12, 1, tzinfo=UTC)
    rows: list[tuple[datetime, str, int, Decimal]] = [
        (day, "gpt-4o" if i % 3 else "claude", i, Decimal("0.000001") * i) for i in range(3000)
    ]
    client.insert(f"{unique}.calls", rows, column_names=["ts", "model", "tokens", "cost"])
    result = client.query(
        f"SELECT model, count(), sum(tokens), sum(cost) FROM {unique}.calls GROUP BY model ORDER BY model"
    ).result_rows
    expected: dict[str, tuple[int, int, Decimal]] = {}
    for _, model, tokens, cost in rows:
        n, t, c = expected.get(model, (0, 0, Decimal(0)))
        expected[model] = (n + 1, t + tokens, c + cost)
    assert [(m, *v) for m, v in sorted(expected.items())] == [tuple(r) for r in result]
    client.command(f"DROP DATABASE {unique}")
