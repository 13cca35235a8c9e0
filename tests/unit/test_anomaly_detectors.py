"""Detectors at their boundaries, and properties over generated windows."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.anomaly import detectors as d
from services.anomaly.errors import StateDecodeError
from services.anomaly.state import SessionState, decode_state, encode_state, note_finished
from services.common.config import DetectorThresholds
from services.common.events import CallFinished

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T = DetectorThresholds()


def call(
    i: int,
    *,
    tokens: int = 100,
    cost: str | None = "0.01",
    status: int = 200,
    fp: str | None = None,
    at: float | None = None,
) -> CallFinished:
    return CallFinished(
        tenant="acme",
        session_id="s1",
        call_id=f"c{i}",
        iteration=i,
        provider="openai",
        endpoint="chat/completions",
        status_code=status,
        outcome="ok" if status < 400 else "upstream_error",
        input_tokens=tokens,
        output_tokens=10,
        cost_usd=None if cost is None else Decimal(cost),
        fingerprint=fp,
        ts=T0 + timedelta(seconds=i if at is None else at),
    )


def fold(events: list[CallFinished], t: DetectorThresholds = T, budget: str | None = None) -> SessionState:
    s = SessionState(tenant="acme", session_id="s1", budget_usd=None if budget is None else Decimal(budget))
    for e in events:
        note_finished(s, e, t.window)
    return s


def tokens_seq(seq: list[int]) -> SessionState:
    return fold([call(i, tokens=n) for i, n in enumerate(seq)])


# ----------------------------------------------------------------- context growth


def test_growth_fires_on_third_consecutive_growth_over_factor() -> None:
    assert d.context_growth(tokens_seq([100, 150, 225]), T) is None  # two growths only
    f = d.context_growth(tokens_seq([100, 150, 225, 338]), T)
    assert f is not None and f.detector == "context_growth"
    assert f.evidence["input_tokens"] == [100, 150, 225, 338]


def test_growth_of_exactly_the_factor_does_not_fire() -> None:
    assert d.context_growth(tokens_seq([100, 140, 196, 275]), T) is None  # 196 == 1.4 * 140
    assert d.context_growth(tokens_seq([100, 141, 198, 278]), T) is not None


def test_growth_chain_broken_by_one_small_step() -> None:
    assert d.context_growth(tokens_seq([100, 150, 160, 240, 360]), T) is None
    assert d.context_growth(tokens_seq([100, 150, 160, 240, 360, 540]), T) is not None


def test_growth_ignores_zero_token_iterations() -> None:
    assert d.context_growth(tokens_seq([0, 150, 225, 338]), T) is None


def test_growth_of_1_2x_never_fires() -> None:
    seq = [int(1000 * 1.2**i) for i in range(20)]
    s = fold([])
    for i, n in enumerate(seq):
        note_finished(s, call(i, tokens=n), T.window)
        assert d.context_growth(s, T) is None


@given(st.lists(st.integers(min_value=1, max_value=10**7), min_size=0, max_size=12))
def test_growth_fires_iff_last_k_ratios_exceed_factor(seq: list[int]) -> None:
    s = tokens_seq(seq)
    k = T.growth_iterations
    tail = seq[-(k + 1) :]
    expected = len(tail) == k + 1 and all(b * 10 > a * 14 for a, b in itertools.pairwise(tail))
    assert (d.context_growth(s, T) is not None) == expected


# ---------------------------------------------------------------------- velocity


def test_velocity_boundary() -> None:
    t = DetectorThresholds(max_calls_per_minute=10)
    at_limit = fold([call(i, at=i * 5.0) for i in range(10)], t)  # 10 calls within 45 s
    assert d.velocity(at_limit, t) is None
    over = fold([call(i, at=i * 5.0) for i in range(11)], t)
    f = d.velocity(over, t)
    assert f is not None and f.evidence["calls_last_minute"] == 11


def test_velocity_counts_only_the_last_minute() -> None:
    t = DetectorThresholds(max_calls_per_minute=10)
    spread = fold([call(i, at=i * 6.0) for i in range(11)], t)  # the first is exactly 60 s old
    assert d.velocity(spread, t) is None


# -------------------------------------------------------------------- repetition


def test_repetition_boundary() -> None:
    t = DetectorThresholds(repetition_count=3)
    two = fold([call(0, fp="a"), call(1, fp="b"), call(2, fp="a")], t)
    assert d.repetition(two, t) is None
    three = fold([call(0, fp="a"), call(1, fp="b"), call(2, fp="a"), call(3, fp="a")], t)
    f = d.repetition(three, t)
    assert f is not None and f.evidence["count"] == 3


def test_repetition_only_within_window() -> None:
    t = DetectorThresholds(repetition_count=3, window=5)
    # Two of the three "a" have left the 5-iteration window.
    s = fold([call(0, fp="a"), call(1, fp="a"), *[call(i, fp=f"x{i}") for i in range(2, 6)], call(6, fp="a")], t)
    assert d.repetition(s, t) is None


def test_repetition_ignores_missing_fingerprints() -> None:
    assert d.repetition(fold([call(i) for i in range(5)]), T) is None


@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=15))
def test_repetition_property(fps: list[str]) -> None:
    s = fold([call(i, fp=fp) for i, fp in enumerate(fps)])
    window = fps[-T.window :]
    assert (d.repetition(s, T) is not None) == (window.count(fps[-1]) >= T.repetition_count)


# ---------------------------------------------------------------- spend velocity


def test_spend_velocity_boundary() -> None:
    t = DetectorThresholds(max_usd_per_minute=Decimal("1.00"))
    exactly = fold([call(i, cost="0.25", at=i * 10.0) for i in range(4)], t)
    assert d.spend_velocity(exactly, t) is None
    over = fold([call(i, cost="0.25", at=i * 10.0) for i in range(4)] + [call(4, cost="0.01", at=40.0)], t)
    f = d.spend_velocity(over, t)
    assert f is not None and f.evidence["usd_last_minute"] == "1.01"


def test_spend_velocity_forgets_older_than_a_minute_and_unknown_prices() -> None:
    t = DetectorThresholds(max_usd_per_minute=Decimal("1.00"))
    s = fold([call(0, cost="0.90", at=0.0), call(1, cost=None, at=30.0), call(2, cost="0.20", at=61.0)], t)
    assert d.spend_velocity(s, t) is None


# -------------------------------------------------------------------- error loop


def test_error_loop_boundary_and_reset() -> None:
    t = DetectorThresholds(error_loop_count=3)
    assert d.error_loop(fold([call(0, status=500), call(1, status=429)], t), t) is None
    f = d.error_loop(fold([call(0, status=500), call(1, status=429), call(2, status=400)], t), t)
    assert f is not None and f.evidence["status_codes"] == [500, 429, 400]
    reset = fold([call(0, status=500), call(1, status=500), call(2), call(3, status=500), call(4, status=500)], t)
    assert d.error_loop(reset, t) is None


@given(st.lists(st.sampled_from([200, 400, 500]), max_size=20))
def test_error_loop_property(statuses: list[int]) -> None:
    s = fold([call(i, status=c) for i, c in enumerate(statuses)])
    trailing = 0
    for c in reversed(statuses):
        if c < 400:
            break
        trailing += 1
    assert (d.error_loop(s, T) is not None) == (trailing >= T.error_loop_count)


# ----------------------------------------------------------------- early warning


def test_early_warning_needs_a_budget() -> None:
    assert d.early_warning(fold([call(0, cost="1.00")]), T) is None


def test_early_warning_boundary_with_growth() -> None:
    t = DetectorThresholds(early_warning_iterations=3)
    # Costs 0.10 then 0.20: growth 2x, next three cost 0.40 + 0.80 + 1.60 = 2.80.
    spent = Decimal("0.30")
    enough = fold(
        [call(0, cost="0.10"), call(1, cost="0.20")], t, budget=str(spent + Decimal("2.80") + Decimal("0.01"))
    )
    assert d.early_warning(enough, t) is None
    just = fold([call(0, cost="0.10"), call(1, cost="0.20")], t, budget=str(spent + Decimal("2.80")))
    f = d.early_warning(just, t)
    assert f is not None and f.evidence["full_iterations_left"] == 2 and f.evidence["cost_growth"] == "2.000"


def test_early_warning_flat_cost() -> None:
    t = DetectorThresholds(early_warning_iterations=3)
    s = fold([call(0, cost="0.50"), call(1, cost="0.50")], t, budget="2.50")  # 1.00 spent, 1.50 left = 3 calls
    assert d.early_warning(s, t) is not None
    s = fold([call(0, cost="0.50"), call(1, cost="0.50")], t, budget="2.51")
    assert d.early_warning(s, t) is None


def test_project_spend() -> None:
    assert d.project_spend(Decimal("1"), Decimal("1.5"), 3) == [Decimal("1.5"), Decimal("3.75"), Decimal("7.125")]


@given(
    st.lists(st.decimals(min_value="0.001", max_value="5", places=3), min_size=1, max_size=8),
    st.decimals(min_value="0.01", max_value="100", places=2),
)
def test_early_warning_property(costs: list[Decimal], budget: Decimal) -> None:
    s = fold([call(i, cost=str(c)) for i, c in enumerate(costs)], budget=str(budget))
    f = d.early_warning(s, T)
    window = costs[-T.window :]
    growth = max(Decimal(1), window[-1] / window[-2]) if len(window) >= 2 else Decimal(1)
    projected = d.project_spend(window[-1], growth, T.early_warning_iterations)[-1]
    assert (f is not None) == (projected >= budget - sum(costs))


# ------------------------------------------------------------------------- state


def test_state_round_trips_and_window_is_bounded() -> None:
    s = fold([call(i, tokens=100 + i, fp="x", cost="0.1") for i in range(12)], budget="9")
    assert len(s.window) == T.window
    back = decode_state(encode_state(s))
    assert back == s
    assert back.spent_usd == Decimal("1.2")
    assert all(e.ts.tzinfo is not None for e in back.window)


def test_bad_state_bytes_are_a_typed_error_and_newer_versions_still_read() -> None:
    for raw in (b"", b"{", b'{"tenant": 5}', b"[]"):
        with pytest.raises(StateDecodeError):
            decode_state(raw)
    # Windows were never refused for a newer ``v`` (unlike events and budget state).
    assert decode_state(encode_state(SessionState(tenant="a", v=99))).v == 99
