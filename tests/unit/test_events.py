from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common import events as ev

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "events"


def _examples() -> list[ev.Event]:
    ts = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    common: dict[str, Any] = {"tenant": "acme", "session_id": "s-1", "ts": ts, "event_id": "e" * 32}
    return [
        ev.CallStarted(
            **common,
            call_id="c1",
            iteration=3,
            project="p",
            team="t",
            provider="openai",
            model="gpt-4o",
            endpoint="chat/completions",
            streamed=True,
            reserved_usd=Decimal("0.012345678"),
            budget_usd=Decimal("2.00"),
            est_input_tokens=120,
        ),
        ev.CallFinished(
            **common,
            call_id="c1",
            iteration=3,
            provider="openai",
            model="gpt-4o",
            endpoint="chat/completions",
            status_code=200,
            input_tokens=100,
            output_tokens=20,
            cached_tokens=5,
            reasoning_tokens=0,
            cost_usd=Decimal("0.00045"),
            latency_ms=12.5,
            ttft_ms=3.0,
            started_at=ts,
        ),
        ev.CallFinished(
            **common,
            call_id="c2",
            provider="anthropic",
            model="claude-unknown-9",
            endpoint="messages",
            status_code=200,
            cost_usd=None,
            price_known=False,
        ),
        ev.PayloadCaptured(
            **common,
            call_id="c1",
            provider="openai",
            endpoint="chat/completions",
            request_body='{"messages": []}',
            response_body="{}",
            truncated=False,
        ),
        ev.Alert(
            **common,
            alert_id="a1",
            detector="context_growth",
            severity="high",
            evidence={"ratios": [1.5, 1.5, 1.6]},
            spent_usd=Decimal("0.5"),
            budget_usd=Decimal("2"),
        ),
        ev.Control(**common, action="set_budget", budget_usd=Decimal("5"), actor="admin"),
        ev.RiskFinding(
            **common,
            finding_id="f1",
            call_id="c1",
            location="request",
            message_index=0,
            finding_type="aws_access_key",
            severity="high",
            preview="AKIA****MPLE",
        ),
    ]


@pytest.mark.parametrize("event", _examples(), ids=lambda e: type(e).__name__)
def test_round_trip(event: ev.Event) -> None:
    assert ev.decode(ev.encode(event)) == event


def test_money_is_exact_and_encoded_as_string() -> None:
    e = ev.CallFinished(
        tenant="t", call_id="c", provider="openai", endpoint="x", status_code=200, cost_usd=Decimal("0.000000001")
    )
    raw = msgspec.json.decode(ev.encode(e))
    assert isinstance(raw["cost_usd"], str) and Decimal(raw["cost_usd"]) == Decimal("0.000000001")
    assert raw["type"] == "call_finished" and raw["v"] == ev.SCHEMA_VERSION


def test_key_is_tenant_and_session() -> None:
    e = ev.Control(tenant="acme", session_id="s-9", action="pause")
    assert e.key == b"acme/s-9"
    assert ev.Control(tenant="acme", action="resume").key == b"acme/"


def test_timestamps_are_utc_aware() -> None:
    e = ev.Control(tenant="acme", session_id="s", action="pause")
    assert e.ts.tzinfo is not None and e.ts.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b'{"type": "nope", "tenant": "t"}',
        b'{"type": "control", "tenant": "t"}',
        b'{"type": "control", "tenant": "t", "action": "explode"}',
    ],
)
def test_garbage_is_a_typed_error(raw: bytes) -> None:
    with pytest.raises(ev.EventDecodeError):
        ev.decode(raw)


def test_newer_version_is_refused() -> None:
    with pytest.raises(ev.EventDecodeError, match="newer"):
        ev.decode(b'{"type": "control", "v": 99, "tenant": "t", "action": "pause"}')


def test_unknown_fields_are_ignored() -> None:
    e = ev.decode(b'{"type": "control", "v": 1, "tenant": "t", "action": "pause", "added_later": 1}')
    assert isinstance(e, ev.Control)


def test_recorded_samples_still_decode() -> None:
    """Every sample written by an earlier version must decode with this build."""
    files = sorted(SAMPLES.glob("v*/*.json"))
    assert len(files) >= len(ev.EVENT_TYPES)
    seen = set()
    for f in files:
        for line in f.read_bytes().splitlines():
            if line.strip():
                seen.add(type(ev.decode(line)))
    assert seen == set(ev.EVENT_TYPES)


@given(
    tokens=st.integers(min_value=0, max_value=10**9),
    cost=st.decimals(min_value=0, max_value=10**6, places=9, allow_nan=False, allow_infinity=False),
)
def test_call_finished_numbers_survive(tokens: int, cost: Decimal) -> None:
    e = ev.CallFinished(
        tenant="t", call_id="c", provider="openai", endpoint="x", status_code=200, input_tokens=tokens, cost_usd=cost
    )
    back = ev.decode(ev.encode(e))
    assert isinstance(back, ev.CallFinished)
    assert back.input_tokens == tokens and back.cost_usd == cost
