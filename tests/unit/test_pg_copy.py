"""The specialised ``llm_calls`` COPY formatter gives byte for byte the generic formatter's text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.events import CallFinished
from services.sink.pg_copy import call_copy_line, call_row, copy_line

# Every character COPY's text format treats specially, mixed into ordinary text; and text with
# none of them, since a row whose strings all need no escaping takes the formatter's fast path.
_SPECIALS = "\t\n\r\\\x00"
_mixed = st.text(alphabet=st.sampled_from(f"ab{_SPECIALS}é€ 𝄞N\x7f\u2028"), max_size=12) | st.text(max_size=12)
_clean = st.text(st.characters(exclude_characters=_SPECIALS, exclude_categories=("C", "Zl", "Zp")), max_size=12)
_tz = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))])
_when = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=_tz)
_money = st.decimals(allow_nan=False, allow_infinity=False, places=None) | st.decimals(
    min_value=Decimal("-1e6"), max_value=Decimal("1e6"), places=9
)
_int = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_float = st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def _calls(draw: st.DrawFn) -> CallFinished:
    text = draw(st.sampled_from([_clean, _mixed]))
    opt_text = st.none() | text
    return CallFinished(
        event_id=draw(text),
        ts=draw(_when),
        tenant=draw(text),
        session_id=draw(opt_text),
        call_id=draw(text),
        iteration=draw(st.none() | _int),
        project=draw(opt_text),
        team=draw(opt_text),
        provider=draw(st.sampled_from(["openai", "anthropic"])),
        model=draw(opt_text),
        endpoint=draw(text),
        streamed=draw(st.booleans()),
        status_code=draw(_int),
        outcome=draw(st.sampled_from(["ok", "upstream_error", "client_disconnected", "refused"])),
        input_tokens=draw(_int),
        output_tokens=draw(_int),
        cached_tokens=draw(_int),
        reasoning_tokens=draw(_int),
        cost_usd=draw(st.none() | _money),
        price_known=draw(st.booleans()),
        reserved_usd=draw(_money),
        started_at=draw(st.none() | _when),
        latency_ms=draw(_float),
        ttft_ms=draw(st.none() | _float),
        source=draw(st.sampled_from(["proxy", "ingest"])),
        gateway_id=draw(opt_text),
    )


@settings(max_examples=500)
@given(_calls())
def test_call_copy_line_matches_generic_copy_line(call: CallFinished) -> None:
    assert call_copy_line(call) == copy_line(call_row(call))


def test_call_copy_line_escapes_specials_and_writes_nulls() -> None:
    ts = datetime(2026, 12, 3, 1, 2, 3, 456789, tzinfo=UTC)
    call = CallFinished(
        ts=ts,
        event_id="e",
        tenant="a\tb\nc\\d\x00\r",
        call_id="c",
        provider="openai",
        endpoint="chat",
        status_code=200,
        cost_usd=Decimal("0.000000001"),
        latency_ms=1.5,
    )
    fields = call_copy_line(call).removesuffix("\n").split("\t")
    assert len(fields) == 26
    assert fields[:5] == ["c", "2026-12-03T01:02:03.456789+00:00", "e", "a\\tb\\nc\\\\d\\r", "\\N"]
    assert fields[18] == "1E-9" and fields[22] == "1.5" and fields[23] == "\\N"
