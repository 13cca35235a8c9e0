"""The PostgreSQL store against a real server: idempotent writes, replay-safe session totals,
migrations, size-capped payloads, retention by partition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from services.common.events import PayloadCaptured
from services.sink.batch import Batch
from services.sink.pg_store import PostgresStore
from services.sink.settings import SinkSettings
from tests.integration.sink_helpers import Expected, make_events


def _batch(events) -> Batch:
    b = Batch()
    for e in events:
        b.add(e)
    return b


async def _fetch(url: str, sql: str):
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return await (await conn.execute(sql)).fetchall()


async def test_replayed_batches_add_nothing(pg_database: str, unique: str) -> None:
    events = make_events(3000, unique)
    expected = Expected()
    for e in events:
        expected.add(e)
    store = PostgresStore(SinkSettings(database_url=pg_database))
    await store.open()
    try:
        await store.write(_batch(events[:2000]))
        # A replay overlapping the first batch (a crash before the commit) and the rest.
        await store.write(_batch(events[1000:]))
        await store.write(_batch(events))
    finally:
        await store.close()
    [(n, pt, ct, cost)] = await _fetch(
        pg_database, "SELECT count(*), sum(prompt_tokens), sum(completion_tokens), sum(cost_usd) FROM llm_calls"
    )
    assert (n, pt, ct, cost) == (expected.calls, expected.prompt_tokens, expected.completion_tokens, expected.cost_usd)
    [(sn, scalls, spt, scost)] = await _fetch(
        pg_database, "SELECT count(*), sum(calls), sum(prompt_tokens), sum(cost_usd) FROM sessions"
    )
    assert (sn, scalls, spt, scost) == (
        len(expected.sessions),
        expected.calls,
        expected.prompt_tokens,
        expected.cost_usd,
    )
    [(alerts,)] = await _fetch(pg_database, "SELECT count(*) FROM alerts")
    [(findings,)] = await _fetch(pg_database, "SELECT count(*) FROM risk_findings")
    assert (alerts, findings) == (expected.alerts, expected.findings)
    [(versions,)] = await _fetch(pg_database, "SELECT array_agg(version) FROM schema_migrations")
    assert versions == [1, 2]


async def test_payloads_are_capped(pg_database: str, unique: str) -> None:
    store = PostgresStore(SinkSettings(database_url=pg_database, payload_max_chars=10))
    await store.open()
    try:
        p = PayloadCaptured(tenant=unique, call_id="c1", provider="openai", endpoint="chat", request_body="x" * 50)
        await store.write(_batch([p]))
    finally:
        await store.close()
    rows = await _fetch(pg_database, "SELECT length(request_body), truncated FROM payloads")
    assert rows == [(10, True)]


async def test_retention_drops_old_partitions_keeps_new(pg_database: str, unique: str) -> None:
    today = datetime.now(UTC).date()
    events = make_events(40, unique, days=40)
    store = PostgresStore(SinkSettings(database_url=pg_database, retention_days=10, partitions_ahead_days=2))
    await store.open()
    try:
        await store.write(_batch(events))
        dropped = await store.apply_retention(today)
    finally:
        await store.close()
    cutoff = today - timedelta(days=10)
    assert dropped and all(d < cutoff for d in dropped)
    names = {
        r[0]
        for r in await _fetch(pg_database, "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid")
    }
    for offset in range(-9, 3):
        assert f"llm_calls_p{today + timedelta(days=offset):%Y%m%d}" in names
    assert not any(f"llm_calls_p{d:%Y%m%d}" in names for d in dropped)
    [(oldest,)] = await _fetch(pg_database, "SELECT min(ts) FROM llm_calls")
    assert oldest.date() >= cutoff
    [(n,)] = await _fetch(pg_database, "SELECT count(*) FROM llm_calls")
    assert n == sum(
        1
        for e in events
        if getattr(e, "call_id", None) and e.ts.date() >= cutoff and type(e).__name__ == "CallFinished"
    )


async def test_copy_round_trips_awkward_text(pg_database: str, unique: str) -> None:
    from services.common.events import Alert

    message = "tab\there\nnew line\\back\\slash \\N not null \r é 🚀"
    alert = Alert(tenant=unique, detector="loop", message=message + "\x00", evidence={"k": message, "n": None})
    store = PostgresStore(SinkSettings(database_url=pg_database))
    await store.open()
    try:
        await store.write(_batch([alert]))
    finally:
        await store.close()
    rows = await _fetch(pg_database, "SELECT message, evidence, project FROM alerts")
    assert rows == [(message, {"k": message, "n": None}, None)]
