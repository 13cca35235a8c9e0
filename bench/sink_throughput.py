"""Sustained events/s from Kafka into each store, through the sink's real consumer loop.

Fills a fresh topic set with N finished-call events, then runs the sink's consumer for each
store (its own consumer group) and times how long it takes until the store holds all N rows:
fetch, decode, batch, write and commit included. Two figures per store: from the consumer's
start (group join and the store's first connection included), and from the first record read
(the rate once data flows). Bounded by --max-seconds per store.

--mode: ``sequential`` (default) one store after the other, each alone on the machine;
``one-loop`` both at once in one event loop, as one ``agentwatch sink`` runs them;
``processes`` both at once, a process each (``agentwatch sink --stores X`` twice).

Then (``--direct``, on by default) the store writes alone: the same events in batches of
--batch-rows handed straight to each store's ``write``, to separate the store's share.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 DATABASE_URL=postgresql://postgres@127.0.0.1:5432/agentwatch \\
        .venv/bin/python bench/sink_throughput.py --events 200000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.common.events import Event
from services.common.topics import Topics, ensure_topics
from services.sink.batch import Batch
from services.sink.ch_store import ClickHouseStore
from services.sink.consumer import StoreConsumer
from services.sink.dead_letters import DeadLetterStore
from services.sink.pg_store import PostgresStore
from services.sink.service import freeze_startup_objects
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


@dataclass
class Figure:
    store: str
    rows: int
    secs: float
    # From the first record read to the last row committed: without the group join and the
    # store's first connection, i.e. the rate the consumer sustains once data flows.
    flowing_secs: float

    def line(self) -> str:
        return (
            f"{self.store + ':':11} {self.rows} rows in {self.secs:.2f}s = {self.rows / self.secs:,.0f} events/s"
            f"  (from the first record: {self.flowing_secs:.2f}s = {self.rows / self.flowing_secs:,.0f} events/s)"
        )


async def _run_store(
    settings: SinkSettings,
    store: Store,
    topics: list[str],
    *,
    n: int,
    count: Callable[[], Awaitable[int]],
    max_s: float,
) -> Figure:
    dead_letters = DeadLetterStore(settings.database_url)
    consumer = StoreConsumer(store, settings, topics, f"{settings.group_prefix}{store.name}", dead_letters)
    await store.open()
    freeze_startup_objects()  # as `agentwatch sink` does once started
    task = asyncio.create_task(consumer.run())
    start = time.perf_counter()
    first: float | None = None
    done = 0
    try:
        while time.perf_counter() - start < max_s:
            if first is None and consumer.stats.records:
                first = time.perf_counter()
            # The consumer's own count of committed rows says when to look; the store's count decides.
            if consumer.stats.rows_written >= n:
                done = await count()
                if done >= n:
                    break
            await asyncio.sleep(0.01)
        end = time.perf_counter()
        return Figure(store.name, done, end - start, end - (first or start))
    finally:
        consumer.stop()
        await task
        await dead_letters.close()
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


def _settings(run: str, bootstrap: str, pg_url: str, chdb_dir: str, batch_rows: int) -> SinkSettings:
    return SinkSettings(
        kafka_bootstrap_servers=bootstrap,
        database_url=pg_url,
        clickhouse_url=f"chdb://{chdb_dir}",
        clickhouse_database=run,
        topic_prefix=f"{run}.",
        group_prefix=f"{run}-",
        batch_rows=batch_rows,
    )


def _topic_names(settings: SinkSettings) -> list[str]:
    topics = Topics.from_settings(settings)
    return [topics.calls, topics.alerts, topics.risk_findings]


async def _consume(settings: SinkSettings, store_name: str, n: int, max_s: float) -> Figure:
    names = _topic_names(settings)
    if store_name == "postgres":
        return await _run_store(
            settings,
            PostgresStore(settings),
            names,
            n=n,
            count=lambda: _pg_count(settings.database_url),
            max_s=max_s,
        )
    ch = ClickHouseStore(settings)

    async def ch_count() -> int:
        _, [(rows,)] = await ch.query("SELECT count() FROM llm_calls")
        return int(rows)

    return await _run_store(settings, ch, names, n=n, count=ch_count, max_s=max_s)


async def _in_processes(args: argparse.Namespace, run: str, pg_url: str, chdb_dir: str, n: int) -> None:
    """One process per store, started together: what ``agentwatch sink --stores X`` twice gives."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--child",
            json.dumps(
                {
                    "run": run,
                    "pg_url": pg_url,
                    "chdb_dir": chdb_dir,
                    "store": store,
                    "n": n,
                    "batch_rows": args.batch_rows,
                    "max_s": args.max_seconds,
                }
            ),
            stdout=asyncio.subprocess.PIPE,
        )
        for store in args.stores.split(",")
    ]
    for proc in procs:
        out, _ = await proc.communicate()
        print(out.decode().strip())


async def _child(spec: dict[str, Any]) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    settings = _settings(spec["run"], bootstrap, spec["pg_url"], spec["chdb_dir"], spec["batch_rows"])
    figure = await _consume(settings, spec["store"], spec["n"], spec["max_s"])
    print(figure.line(), flush=True)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch-rows", type=int, default=10_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--stores", default="postgres,clickhouse")
    ap.add_argument(
        "--mode",
        choices=["sequential", "one-loop", "processes"],
        default="sequential",
        help="one store after the other (default); both at once in one event loop, as one "
        "`agentwatch sink` runs them; or both at once, one process each",
    )
    ap.add_argument("--no-direct", dest="direct", action="store_false", help="skip the store-only measurement")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        await _child(json.loads(args.child))
        return

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    admin_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/agentwatch")
    run = "bench" + uuid.uuid4().hex[:8]
    chdb_dir = tempfile.mkdtemp(prefix="aw-bench-chdb-")
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{run}"')
    pg_url = admin_url.rpartition("/")[0] + f"/{run}"
    settings = _settings(run, bootstrap, pg_url, chdb_dir, args.batch_rows)
    names = _topic_names(settings)
    await ensure_topics(bootstrap, names, partitions=args.partitions)
    events = [e for e in make_events(args.events, run) if type(e).__name__ == "CallFinished"]
    t0 = time.perf_counter()
    await produce(bootstrap, events, *names)
    print(f"produced {len(events)} events in {time.perf_counter() - t0:.1f}s; mode {args.mode}")
    stores = [s for s in ("postgres", "clickhouse") if s in args.stores]
    try:
        if args.mode == "sequential":
            for store in stores:
                print((await _consume(settings, store, len(events), args.max_seconds)).line())
        elif args.mode == "one-loop":
            figures = await asyncio.gather(*(_consume(settings, s, len(events), args.max_seconds) for s in stores))
            for figure in figures:
                print(figure.line())
        else:
            await _in_processes(args, run, pg_url, chdb_dir, len(events))
        if args.direct:
            await _direct(settings, events, args)
    finally:
        async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{run}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
