"""Sink pieces that need no services: batching, COPY text, partition arithmetic, reports, CLI errors."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pytest

from services.cli import main
from services.common.events import CallFinished, CallStarted
from services.sink import ch_arrow
from services.sink.analytics_client import render
from services.sink.batch import Batch
from services.sink.columns import ALERT_COLUMNS, CALL_COLUMNS, FINDING_COLUMNS
from services.sink.errors import StoreDataError
from services.sink.pg_copy import copy_line
from services.sink.pg_partitions import expired, partition_name
from services.sink.reports import REPORTS

DOC = Path(__file__).resolve().parents[2] / "docs" / "analytics.md"


def _call(call_id: str) -> CallFinished:
    return CallFinished(
        tenant="t", call_id=call_id, provider="openai", endpoint="chat", status_code=200, cost_usd=Decimal("0.1")
    )


def test_batch_drops_duplicates_and_counts_unstored_records() -> None:
    b = Batch()
    assert b.add(_call("a")) and b.add(_call("a")) and b.add(_call("b"))
    assert not b.add(CallStarted(tenant="t", call_id="a", provider="openai", endpoint="chat"))
    assert b.rows == 2
    b.clear()
    assert b.rows == 0 and b.records == 0


def test_copy_line_escapes_and_nulls() -> None:
    ts = datetime(2026, 12, 3, 1, 2, 3, 456789, tzinfo=UTC)
    line = copy_line(("a\tb\nc\\d\x00", None, True, False, 3, Decimal("0.000000001"), ts, 1.5))
    assert line == "a\\tb\\nc\\\\d\t\\N\tt\tf\t3\t1E-9\t2026-12-03T01:02:03.456789+00:00\t1.5\n"


def test_partitions_expire_by_whole_day() -> None:
    days = {date(2026, 11, d) for d in range(1, 30)}
    old = expired(days, today=date(2026, 11, 29), retention_days=10)
    assert old == [date(2026, 11, d) for d in range(1, 19)]
    assert partition_name(date(2026, 1, 2)) == "llm_calls_p20260102"


def test_reports_are_documented_verbatim() -> None:
    text = DOC.read_text()
    section = text.split("## Ready-made queries", 1)[1]
    assert set(re.findall(r"^### `([a-z0-9_]+)`", section, flags=re.M)) == set(REPORTS)
    assert len(REPORTS) >= 10
    for report in REPORTS.values():
        assert report.sql.strip() in section


def test_render_table_and_json() -> None:
    result: tuple[list[str], list[list[Any]]] = (["team", "cost_usd"], [["a", Decimal("1.5")], ["b", None]])
    assert (
        render(result, "json")
        == '[\n  {\n    "team": "a",\n    "cost_usd": "1.5"\n  },\n  {\n    "team": "b",\n    "cost_usd": null\n  }\n]'
    )
    table = render(result, "table").splitlines()
    assert table[0].split(" | ") == ["team", "cost_usd"]
    assert table[-1] == "(2 rows)"


def test_report_cli_refuses_unknown_names_and_missing_params(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "no_such_report"]) == 2
    assert "agentwatch report --list" in capsys.readouterr().err
    assert main(["report", "tokens_per_iteration"]) == 2
    assert "--param session_id" in capsys.readouterr().err
    assert main(["report", "--list"]) == 0
    assert "runaway_candidates" in capsys.readouterr().out


def test_query_cli_explains_an_unreachable_sink(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CLICKHOUSE_URL", "chdb:///nonexistent")
    monkeypatch.setenv("AGENTWATCH_SINK_PORT", str(port))
    assert main(["query", "SELECT 1"]) == 1
    assert "agentwatch sink" in capsys.readouterr().err


def test_batch_split_halves_rows_and_keeps_sources() -> None:
    b = Batch()
    for i in range(5):
        b.add(_call(f"c{i}"), ("calls", 0, i, b"raw"))
    first, second = b.split()
    assert (first.rows, second.rows) == (2, 3)
    assert set(first.calls) | set(second.calls) == set(b.calls)
    assert first.sources is b.sources and len(b.sources) == 5


def test_arrow_columns_follow_the_shared_column_order() -> None:
    assert tuple(c.name for c in ch_arrow.CALLS) == CALL_COLUMNS
    assert tuple(c.name for c in ch_arrow.ALERTS) == ALERT_COLUMNS
    assert tuple(c.name for c in ch_arrow.FINDINGS) == FINDING_COLUMNS


def test_arrow_rounds_usd_like_postgres_and_refuses_what_does_not_fit() -> None:
    calls = [_call("a"), _call("b")]
    calls[0] = msgspec.structs.replace(calls[0], cost_usd=Decimal("0.0000000375"), project=None)
    calls[1] = msgspec.structs.replace(calls[1], cost_usd=Decimal("-0.0000000375"))
    table = pa.ipc.open_stream(ch_arrow.arrow_stream(ch_arrow.CALLS, calls)).read_all()
    # numeric(20, 9) rounds half away from zero; so must the ClickHouse copy.
    assert table.column("cost_usd").to_pylist() == [Decimal("0.000000038"), Decimal("-0.000000038")]
    assert table.column("project").to_pylist() == ["", ""]
    with pytest.raises(StoreDataError, match="cost_usd"):
        ch_arrow.arrow_stream(ch_arrow.CALLS, [msgspec.structs.replace(calls[0], cost_usd=Decimal("1e12"))])
    with pytest.raises(StoreDataError, match="prompt_tokens"):
        ch_arrow.arrow_stream(ch_arrow.CALLS, [msgspec.structs.replace(calls[0], input_tokens=-1)])
