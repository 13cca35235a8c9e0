from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.events import CallFinished, CallStarted, Control, ReservationRequest
from services.common.session_state import (
    RECENT_FINISHED_MAX,
    FoldEvent,
    SessionState,
    SessionStateDecodeError,
    changelog_topic,
    decode_state,
    encode_state,
    fold,
    reserve,
)

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "session_state" / "v1.json"
T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def started(call_id: str, reserved: str = "0.10", budget: str | None = "1.00", **kw) -> CallStarted:
    return CallStarted(
        tenant="acme",
        session_id="s1",
        call_id=call_id,
        provider="openai",
        endpoint="chat/completions",
        reserved_usd=Decimal(reserved),
        budget_usd=Decimal(budget) if budget else None,
        ts=kw.pop("ts", T0),
        **kw,
    )


def finished(call_id: str, cost: str | None = "0.07", reserved: str = "0.10", **kw) -> CallFinished:
    return CallFinished(
        tenant="acme",
        session_id="s1",
        call_id=call_id,
        provider="openai",
        endpoint="chat/completions",
        status_code=200,
        input_tokens=100,
        output_tokens=20,
        cost_usd=Decimal(cost) if cost is not None else None,
        price_known=cost is not None,
        reserved_usd=Decimal(reserved),
        ts=kw.pop("ts", T0 + timedelta(seconds=1)),
        **kw,
    )


def run(events: list[FoldEvent], state: SessionState | None = None) -> SessionState:
    for e in events:
        state, _ = fold(state, e)
    assert state is not None
    return state


def test_reservation_replaced_by_cost():
    s = run([started("a", iteration=1, project="p", team="t")])
    assert (s.reserved_usd, s.spent_usd, s.budget_usd, s.in_flight) == (
        Decimal("0.10"),
        Decimal(0),
        Decimal("1.00"),
        {"a": Decimal("0.10")},
    )
    s = run([finished("a")], s)
    assert (s.reserved_usd, s.spent_usd, s.in_flight) == (Decimal(0), Decimal("0.07"), {})
    assert (s.input_tokens, s.output_tokens, s.calls, s.iterations, s.last_iteration) == (100, 20, 1, 1, 1)
    assert (s.project, s.team, s.first_seen, s.last_seen) == ("p", "t", T0, T0 + timedelta(seconds=1))


def test_redelivery_is_not_applied_twice():
    events: list[FoldEvent] = [started("a"), finished("a"), started("b")]
    once = run(events)
    for replay in (events, [events[1]], [events[0]], [events[2]]):
        again = once
        for e in replay:
            again, changed = fold(again, e)
            assert not changed
    assert encode_state(again) == encode_state(once)


def test_finished_without_started_counts_cost_only():
    s = run([finished("x", cost="0.02", source="ingest")])
    assert (s.spent_usd, s.reserved_usd) == (Decimal("0.02"), Decimal(0))


def test_unpriced_call_charged_its_reservation():
    s = run([started("a", reserved="0.30"), finished("a", cost=None, reserved="0.30")])
    assert (s.spent_usd, s.unpriced_calls) == (Decimal("0.30"), 1)


def test_budget_set_then_only_lowered_by_calls_admin_sets_any():
    s = run([started("a", budget="1.00"), started("b", budget="2.00")])
    assert s.budget_usd == Decimal("1.00")
    s = run([started("c", budget="0.50")], s)
    assert s.budget_usd == Decimal("0.50")
    s = run([Control(tenant="acme", session_id="s1", action="set_budget", budget_usd=Decimal("5"))], s)
    assert s.budget_usd == Decimal("5")
    s = run([started("d", budget="0.10")], s)
    assert s.budget_usd == Decimal("5"), "after an admin set it, request headers no longer change it"


def test_pause_resume():
    s = run([Control(tenant="acme", session_id="s1", action="pause", reason="loop")])
    assert (s.paused, s.pause_reason) == (True, "loop")
    s = run([Control(tenant="acme", session_id="s1", action="resume")], s)
    assert (s.paused, s.pause_reason) == (False, None)


def test_recent_finished_bounded():
    s = run([finished(f"c{i}", cost="0.01") for i in range(RECENT_FINISHED_MAX + 10)])
    assert len(s.recent_finished) == RECENT_FINISHED_MAX
    assert s.recent_finished[-1] == f"c{RECENT_FINISHED_MAX + 9}"


@given(st.lists(st.tuples(st.integers(0, 20), st.booleans(), st.integers(0, 10**6)), max_size=60))
def test_any_order_with_redelivery_sums_exactly(ops):
    """Whatever the interleaving and duplicates, spent is the sum over distinct finished calls."""
    s = None
    costs: dict[str, Decimal] = {}
    for n, is_finish, micros in ops:
        cid = f"c{n}"
        if is_finish:
            cost = costs.setdefault(cid, Decimal(micros) / 10**6)
            s, _ = fold(s, finished(cid, cost=str(cost)))
        else:
            s, _ = fold(s, started(cid, reserved="0.5"))
    if s is None:
        return
    assert s.spent_usd == sum(costs.values(), Decimal(0))
    assert s.reserved_usd == Decimal("0.5") * len(s.in_flight)
    assert not set(s.in_flight) & set(s.recent_finished)


def test_recorded_sample_still_decodes():
    state = decode_state(SAMPLE.read_bytes())
    assert state.spent_usd == Decimal("0.07") and state.in_flight == {"b": Decimal("0.10")}
    assert decode_state(encode_state(state)) == state


def test_bad_and_newer_state_rejected():
    with pytest.raises(SessionStateDecodeError):
        decode_state(b"{}")
    with pytest.raises(SessionStateDecodeError):
        decode_state(encode_state(SessionState(tenant="a", session_id="b", v=99)))


def test_changelog_name():
    assert changelog_topic("aw.") == "aw.budget-sessions-changelog"


def reservation(call_id: str, amount: str = "0.30") -> ReservationRequest:
    return ReservationRequest(
        tenant="acme",
        session_id="s1",
        call_id=call_id,
        amount_usd=Decimal(amount),
        budget_usd=Decimal("1.00"),
        gateway_id="gw",
    )


def test_strict_reserve_grants_until_budget_then_refuses():
    s = None
    codes = []
    for i in range(5):
        s, d = reserve(s, reservation(f"c{i}"))
        codes.append(d.code)
    assert codes == ["granted"] * 3 + ["budget_exceeded"] * 2
    assert s is not None and s.reserved_usd == Decimal("0.90") and s.budget_usd == Decimal("1.00")
    s, d = reserve(s, reservation("c0"))
    assert d.code == "granted" and s.reserved_usd == Decimal("0.90"), "a redelivered request is granted once"
    s, changed = fold(s, started("c0", reserved="0.30"))
    assert not changed, "the gateway's CallStarted for a granted call is a no-op"
    s = run([finished("c0", cost="0.05", reserved="0.30")], s)
    assert (s.spent_usd, s.reserved_usd) == (Decimal("0.05"), Decimal("0.60"))
    s, d = reserve(s, reservation("c0"))
    assert d.code == "already_finished"
    s = run([Control(tenant="acme", session_id="s1", action="pause")], s)
    assert reserve(s, reservation("z", "0.01"))[1].code == "session_paused"


def test_refused_call_releases_reservation_without_cost_or_count():
    s = run([started("a"), finished("a", cost=None, outcome="refused")])
    assert (s.spent_usd, s.reserved_usd, s.calls, s.unpriced_calls) == (Decimal(0), Decimal(0), 0, 0)
    s, changed = fold(s, started("a"))
    assert not changed and s.reserved_usd == 0, "a late CallStarted of a released call stays released"
