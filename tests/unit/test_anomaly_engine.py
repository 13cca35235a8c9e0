"""The detection step: cooldown, pause policy, and no re-alert after a state round-trip."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.anomaly.engine import step
from services.anomaly.slack import slack_message
from services.anomaly.state import SessionState, decode_state, encode_state
from services.common.config import DetectorThresholds, TenantPolicy
from services.common.events import CallFinished, CallStarted, Control

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def finished(i: int, tokens: int, at: float | None = None) -> CallFinished:
    return CallFinished(
        tenant="acme",
        session_id="s1",
        call_id=f"c{i}",
        iteration=i,
        project="checkout",
        team="payments",
        provider="openai",
        endpoint="chat/completions",
        status_code=200,
        input_tokens=tokens,
        cost_usd=Decimal("0.001"),
        ts=T0 + timedelta(seconds=i if at is None else at),
    )


def run(events: Sequence[CallFinished | CallStarted], policy: TenantPolicy, replay: bool = False) -> tuple[int, int]:
    state: SessionState | None = None
    alerts = controls = 0
    for e in events:
        out = step(state, e, policy)
        alerts += len(out.alerts)
        controls += len(out.controls)
        # A worker restart rebuilds state from the changelog: the encoded bytes.
        state = decode_state(encode_state(out.state)) if replay else out.state
    return alerts, controls


def growth(n: int, factor: float = 1.5) -> list[CallFinished]:
    return [finished(i, int(1000 * factor**i)) for i in range(n)]


def test_one_alert_per_cooldown_even_across_restarts() -> None:
    policy = TenantPolicy()
    assert run(growth(10), policy) == (1, 0)
    assert run(growth(10), policy, replay=True) == (1, 0)


def test_alerts_again_after_the_cooldown() -> None:
    policy = TenantPolicy(detectors=DetectorThresholds(cooldown_s=60))
    events = growth(4) + [finished(4 + i, int(1000 * 1.5 ** (4 + i)), at=100.0 + i) for i in range(3)]
    assert run(events, policy) == (2, 0)


def test_pause_policy_emits_one_control() -> None:
    policy = TenantPolicy(loop_policy="pause")
    state: SessionState | None = None
    controls: list[Control] = []
    for e in growth(6):
        out = step(state, e, policy)
        state = out.state
        controls += out.controls
    assert [c.action for c in controls] == ["pause"]
    assert controls[0].session_id == "s1" and controls[0].actor == "anomaly"


def test_budget_from_call_started_reaches_the_alert() -> None:
    started = CallStarted(
        tenant="acme", session_id="s1", call_id="c0", provider="openai", endpoint="x", budget_usd=Decimal("2")
    )
    out = step(None, started, TenantPolicy())
    for e in growth(4):
        out = step(out.state, e, TenantPolicy())
    assert len(out.alerts) == 1
    alert = out.alerts[0]
    assert alert.budget_usd == Decimal("2") and alert.spent_usd == Decimal("0.004")
    assert (alert.project, alert.team, alert.detector) == ("checkout", "payments", "context_growth")
    msg = slack_message(alert)
    text = str(msg)
    assert "acme/s1" in text and "checkout" in text and "payments" in text and "$2.0000" in text
    assert "ratios" in text and msg["blocks"][0]["type"] == "header"


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=20_000),  # input tokens
            st.sampled_from([200, 200, 200, 500]),
            st.sampled_from(["a", "b", "c"]),
            st.floats(min_value=0.0, max_value=30.0),  # seconds since the previous call
        ),
        max_size=60,
    ),
    st.sampled_from([0.0, 10.0, 60.0]),
)
def test_at_most_one_alert_per_detector_per_cooldown(calls: list[tuple[int, int, str, float]], cooldown: float) -> None:
    policy = TenantPolicy(
        detectors=DetectorThresholds(cooldown_s=cooldown, max_calls_per_minute=5, error_loop_count=2),
    )
    state: SessionState | None = None
    at = 0.0
    fired: dict[str, list[datetime]] = {}
    for i, (tokens, status, fp, gap) in enumerate(calls):
        at += gap
        event = CallFinished(
            tenant="acme",
            session_id="s",
            call_id=f"c{i}",
            provider="openai",
            endpoint="chat",
            status_code=status,
            outcome="ok" if status < 400 else "upstream_error",
            input_tokens=tokens,
            fingerprint=fp,
            cost_usd=Decimal("0.01"),
            ts=T0 + timedelta(seconds=at),
        )
        out = step(state, event, policy)
        state = out.state
        for alert in out.alerts:
            fired.setdefault(alert.detector, []).append(event.ts)
    for times in fired.values():
        assert all((b - a).total_seconds() >= cooldown for a, b in itertools.pairwise(times))
