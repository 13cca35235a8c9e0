"""Sustained events/s from Kafka into each store, through the sink's real consumer loop.

Fills a fresh topic set with N finished-call events, then runs the sink's consumer for one
store at a time (its own consumer group) and times how long it takes until the store holds
all N rows: fetch, decode, batch, write and commit included. Bounded by --max-seconds per
store. Then (``--direct``, on by default) the store writes alone: the same events in batches
of --batch-rows handed straight to each store's ``write``, to separate the store's share.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 DATABASE_URL=postgresql://postgres@127.0.0.1:5432/agentwatch \\
        .venv/bin/python bench/sink_throughput.py --events 200000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.common.events import Event
from services.common.topics import Topics, ensure_topics
from services.sink.batch import Batch
from services.sink.ch_store import ClickHouseStore
from services.sink.consumer import StoreConsumer
from services.sink.pg_store import PostgresStore
from services.sink.settings import SinkSettings
from services.sink.store import Store
from tests.integration.sink_helpers import make_events, produce


async def _pg_count(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        try:
            row = await (await conn.execute("SELECT count(*) FROM llm_calls")).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0  # the sink has not migrated yet
        return int(row[0]) if row else 0


async def _run_store(
    settings: SinkSettings,
    store: Store,
    topics: list[str],
    *,
    n: int,
    count: Callable[[], Awaitable[int]],
    max_s: float,
) -> tuple[int, float]:
    consumer = StoreConsumer(store, settings, topics, f"{settings.group_prefix}{store.name}")
    await store.open()
    task = asyncio.create_task(consumer.run())
    start = time.perf_counter()
    done = 0
    try:
        while time.perf_counter() - start < max_s:
            done = await count()
            if done >= n:
                break
            await asyncio.sleep(0.2)
        return done, time.perf_counter() - start
    finally:
        consumer.stop()
        await task
        await store.close()


async def _direct(settings: SinkSettings, events: list[Event], args: argparse.Namespace) -> None:
    """Store writes alone, into fresh tables: what each store takes once the events are decoded."""
    run = "direct" + uuid.uuid4().hex[:8]
    admin_url = settings.database_url.rpartition("/")[0] + "/postgres"
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{run}"')
    direct = settings.model_copy(
        update={"database_url": settings.database_url.rpartition("/")[0] + f"/{run}", "clickhouse_database": run}
    )
    try:
        for store in (PostgresStore(direct), ClickHouseStore(direct)):
            if store.name not in args.stores:
                continue
            await store.open()
            batches = []
            for i in range(0, len(events), args.batch_rows):
                b = Batch()
                for e in events[i : i + args.batch_rows]:
                    b.add(e)
                batches.append(b)
            await store.write(batches[0])  # schema, partitions, connections: not timed
            start = time.perf_counter()
            for b in batches[1:]:
                await store.write(b)
            secs = time.perf_counter() - start
            n = len(events) - batches[0].rows
            print(f"{store.name} (write only): {n} rows in {secs:.2f}s = {n / secs:,.0f} rows/s")
            await store.close()
    finally:
        async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{run}" WITH (FORCE)')


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch-rows", type=int, default=10_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--stores", default="postgres,clickhouse")
    ap.add_argument("--no-direct", dest="direct", action="store_false", help="skip the store-only measurement")
    args = ap.parse_args()

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    admin_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/agentwatch")
    run = "bench" + uuid.uuid4().hex[:8]
    chdb_dir = tempfile.mkdtemp(prefix="aw-bench-chdb-")
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{run}"')
    pg_url = admin_url.rpartition("/")[0] + f"/{run}"
    settings = SinkSettings(
        kafka_bootstrap_servers=bootstrap,
        database_url=pg_url,
        clickhouse_url=f"chdb://{chdb_dir}",
        clickhouse_database=run,
        topic_prefix=f"{run}.",
        group_prefix=f"{run}-",
        batch_rows=args.batch_rows,
    )
    topics = Topics.from_settings(settings)
    names = [topics.calls, topics.alerts, topics.risk_findings]
    await ensure_topics(bootstrap, names, partitions=args.partitions)
    events = [e for e in make_events(args.events, run) if type(e).__name__ == "CallFinished"]
    t0 = time.perf_counter()
    await produce(bootstrap, events, *names)
    print(f"produced {len(events)} events in {time.perf_counter() - t0:.1f}s")
    try:
        if "postgres" in args.stores:
            done, secs = await _run_store(
                settings,
                PostgresStore(settings),
                names,
                n=len(events),
                count=lambda: _pg_count(pg_url),
                max_s=args.max_seconds,
            )
            print(f"postgres:   {done} rows in {secs:.2f}s = {done / secs:,.0f} events/s")
        if "clickhouse" in args.stores:
            ch = ClickHouseStore(settings)

            async def ch_count() -> int:
                _, [(n,)] = await ch.query("SELECT count() FROM llm_calls")
                return int(n)

            done, secs = await _run_store(settings, ch, names, n=len(events), count=ch_count, max_s=args.max_seconds)
            print(f"clickhouse: {done} rows in {secs:.2f}s = {done / secs:,.0f} events/s")
        if args.direct:
            await _direct(settings, events, args)
    finally:
        async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{run}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
