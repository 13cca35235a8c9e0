"""The ClickHouse store on the real engine (chdb): replays never double-count, rollups
included; every ready-made report runs against the real schema; queries are read-only."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from services.common.events import CallFinished
from services.sink.batch import Batch
from services.sink.ch_store import ClickHouseStore
from services.sink.errors import QueryError
from services.sink.reports import REPORTS
from services.sink.settings import SinkSettings
from tests.integration.sink_helpers import Expected, make_events

DOC = Path(__file__).resolve().parents[2] / "docs" / "analytics.md"


def _batch(events) -> Batch:
    b = Batch()
    for e in events:
        b.add(e)
    return b


@pytest.fixture
async def ch_store(clickhouse_url: str, unique: str):
    store = ClickHouseStore(SinkSettings(clickhouse_url=clickhouse_url, clickhouse_database=unique))
    await store.open()
    yield store
    await store.query("SELECT 1")
    store._ensure_ready().command(f"DROP DATABASE IF EXISTS {unique}")
    await store.close()


async def test_replays_never_double_count_base_or_rollups(ch_store: ClickHouseStore, unique: str) -> None:
    events = make_events(3000, unique)
    expected = Expected()
    for e in events:
        expected.add(e)
    await ch_store.write(_batch(events[:2000]))
    await ch_store.write(_batch(events[1000:]))
    await ch_store.write(_batch(events))
    _, [row] = await ch_store.query(
        "SELECT count(), sum(prompt_tokens), sum(completion_tokens), sum(cost_usd) FROM llm_calls"
    )
    assert row == (expected.calls, expected.prompt_tokens, expected.completion_tokens, expected.cost_usd)
    _, [rollup] = await ch_store.query("SELECT sum(calls), sum(prompt_tokens), sum(cost_usd) FROM spend_daily")
    assert rollup == (expected.calls, expected.prompt_tokens, expected.cost_usd)
    _, [sessions] = await ch_store.query(
        "SELECT uniqExact(tenant, session_id), sum(calls), sum(cost_usd) FROM session_totals"
    )
    assert sessions == (len(expected.sessions), expected.calls, expected.cost_usd)
    _, [(alerts,)] = await ch_store.query("SELECT count() FROM alerts")
    _, [(findings,)] = await ch_store.query("SELECT count() FROM risk_findings")
    assert (alerts, findings) == (expected.alerts, expected.findings)


async def test_queries_are_read_only(ch_store: ClickHouseStore) -> None:
    await ch_store.ensure_schema()
    for sql in ("DROP TABLE llm_calls", "INSERT INTO alerts (alert_id) VALUES ('x')", "SELEC 1"):
        with pytest.raises(QueryError):
            await ch_store.query(sql)
    _, rows = await ch_store.query("SELECT count() FROM llm_calls")
    assert rows == [(0,)]


async def test_every_report_runs_and_is_documented(ch_store: ClickHouseStore, unique: str) -> None:
    events = make_events(1500, unique)
    # A session whose prompt grows 1.5x per iteration: the runaway report must name it.
    for i in range(6):
        events.append(
            CallFinished(
                tenant=unique,
                session_id="loop",
                call_id=f"loop-{i}",
                iteration=i,
                team="payments",
                project="checkout",
                provider="openai",
                model="gpt-4o",
                endpoint="chat/completions",
                status_code=200,
                input_tokens=int(1000 * 1.5**i),
                output_tokens=10,
                cost_usd=Decimal("0.01"),
            )
        )
    expected = Expected()
    for e in events:
        expected.add(e)
    await ch_store.write(_batch(events))
    results = {}
    for report in REPORTS.values():
        params = {"session_id": "loop"} if report.params else None
        results[report.name] = await ch_store.query(report.sql, params)
    cols, rows = results["spend_per_team_per_day"]
    assert sum(r[cols.index("cost_usd")] for r in rows) == expected.cost_usd
    assert sum(r[cols.index("calls")] for r in rows) == expected.calls
    cols, rows = results["runaway_candidates"]
    assert [r[cols.index("session_id")] for r in rows] == ["loop"]
    cols, rows = results["tokens_per_iteration"]
    assert [r[cols.index("prompt_tokens")] for r in rows] == [int(1000 * 1.5**i) for i in range(6)]
    cols, rows = results["top_sessions_by_cost"]
    costs = [r[cols.index("cost_usd")] for r in rows]
    assert costs == sorted(costs, reverse=True) and len(rows) == 20
    cols, rows = results["latency_per_model"]
    assert {r[cols.index("model")] for r in rows} == {"gpt-4o", "claude-sonnet-4"}
    assert all(r[cols.index("p50_latency_ms")] <= r[cols.index("p95_latency_ms")] for r in rows)
    cols, rows = results["unpriced_calls"]
    assert sum(r[cols.index("calls")] for r in rows) == sum(
        1 for e in events if isinstance(e, CallFinished) and e.cost_usd is None
    )
    cols, rows = results["cost_per_project_per_week"]
    assert sum(r[cols.index("cost_usd")] for r in rows) == expected.cost_usd
    assert len(REPORTS) >= 10 and all(rows for rows in (r[1] for r in results.values()))
    section = DOC.read_text().split("## Ready-made queries", 1)[1]
    documented = set(re.findall(r"^### `([a-z0-9_]+)`", section, flags=re.M))
    assert documented == set(REPORTS)
    for report in REPORTS.values():
        assert report.sql.strip() in DOC.read_text(), f"docs/analytics.md has a stale copy of {report.name}"


async def test_big_batches_of_long_ids_are_checked_in_chunks(ch_store: ClickHouseStore, unique: str) -> None:
    # 4000 ids of 100 characters: one IN list would exceed ClickHouse's 256 KiB max_query_size.
    calls = [
        CallFinished(
            tenant=unique,
            call_id=f"{i:06d}" + "x" * 94,
            provider="openai",
            endpoint="chat",
            status_code=200,
            cost_usd=Decimal("0.000001"),
        )
        for i in range(4000)
    ]
    await ch_store.write(_batch(calls))
    await ch_store.write(_batch(calls))
    _, rows = await ch_store.query("SELECT count(), sum(cost_usd) FROM llm_calls")
    assert rows == [(4000, Decimal("0.004"))]
