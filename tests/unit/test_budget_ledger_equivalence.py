"""The ledger's kept sums give exactly what summing every local entry on every call gave.

``ReferenceLedger`` is the previous algorithm (a full pass over a session's entries on each
view and sweep), kept here as the oracle. Random sequences of admissions, settlements, table
updates (folding calls' starts and ends, controls, tombstones) and clock advances drive both
over one table; after every step the views of every session must be equal, down to the
Decimal representation the JSON body shows.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.config import TenantPolicy
from services.common.events import CallFinished, CallStarted, Control, session_key
from services.common.session_state import SessionState, decode_state, encode_state, fold, lowered_budget
from services.gateway import budget_local
from services.gateway.budget import BudgetLedger, Deferral, Refusal, Reservation, SessionView

SESSIONS = ["s0", "s1", "s2"]
CALLS = [f"c{i}" for i in range(8)]
AMOUNTS = [Decimal("0.1"), Decimal("0.10"), Decimal("0.25"), Decimal("0.005"), Decimal("1"), Decimal("0.000")]
COSTS = [None, Decimal("0"), Decimal("0.00"), Decimal("0.05"), Decimal("0.123"), Decimal("0.3")]
BUDGETS = [None, Decimal("1.00"), Decimal("0.5"), Decimal("2")]
POLICIES = [TenantPolicy(), TenantPolicy(on_unknown_state="closed"), TenantPolicy(default_budget_usd=Decimal("0.8"))]
# Around stale_after_s=10 and forget_after_s=60 (below), plus tiny steps.
TICKS = [0.0, 0.001, 1.0, 9.5, 10.0, 0.5, 30.0, 59.0, 60.0, 61.0, 200.0]
STALE, FORGET = 10.0, 60.0


@dataclass
class Clock:
    now: float = 5000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Table:
    """The replica's role: each change stores a new state object and a new version token."""

    ready: bool = True
    states: dict[bytes, SessionState] = field(default_factory=dict)
    versions: dict[bytes, object] = field(default_factory=dict)

    def get(self, key: bytes) -> SessionState | None:
        return self.states.get(key)

    def version(self, key: bytes) -> object:
        return self.versions.get(key)

    def apply(self, event: CallStarted | CallFinished | Control) -> None:
        old = self.states.get(event.key)
        copy = decode_state(encode_state(old)) if old is not None else None
        self.states[event.key], _ = fold(copy, event)
        self.versions[event.key] = object()

    def drop(self, key: bytes) -> None:
        self.states.pop(key, None)
        self.versions.pop(key, None)


@dataclass(slots=True)
class _Local:
    reservation: Decimal
    started: float
    cost: Decimal | None = None
    finished: bool = False


@dataclass
class ReferenceLedger:
    """The previous BudgetLedger's local corrections: every entry visited on every view."""

    source: Table
    clock: Callable[[], float]
    gateways: int = 1
    stale_after_s: float = STALE
    forget_after_s: float = FORGET
    sweep_per_entry: int = 2
    _local: OrderedDict[bytes, dict[str, _Local]] = field(default_factory=OrderedDict)
    _local_budget: dict[bytes, Decimal] = field(default_factory=dict)

    def admit(  # noqa: PLR0917 -- the old signature, flattened
        self, key: bytes, call_id: str, amount: Decimal, requested: Decimal | None, policy: TenantPolicy, share: bool
    ) -> Reservation | Refusal | Deferral:
        view, state = self._view(key, policy, requested)
        if not view.known and policy.on_unknown_state == "closed":
            return Refusal("budget_state_unknown", "session budget state is unavailable; retry later", view, status=503)
        if view.paused:
            return Refusal("session_paused", f"session is paused: {view.pause_reason or 'paused'}", view)
        if view.budget_usd is not None and view.spent_usd + view.reserved_usd + amount > view.budget_usd:
            return Refusal(
                "budget_exceeded",
                f"session budget ${view.budget_usd} would be exceeded: spent ${view.spent_usd}, "
                f"in flight ${view.reserved_usd}, this call up to ${amount}",
                view,
            )
        if share and self.gateways > 1 and view.budget_usd is not None:
            in_table = (state.spent_usd + state.reserved_usd) if state is not None else Decimal(0)
            unseen = view.spent_usd + view.reserved_usd - in_table
            if unseen > 0 and unseen + amount > (view.budget_usd - in_table) / self.gateways:
                return Deferral(view)
        self._add(key, call_id, amount)
        if (state is None or state.budget_usd is None) and view.budget_usd is not None:
            self._local_budget[key] = view.budget_usd
        return Reservation(key, call_id, amount, view.budget_usd)

    def _add(self, key: bytes, call_id: str, amount: Decimal) -> None:
        self.sweep(self.sweep_per_entry)
        self._local.setdefault(key, {})[call_id] = _Local(amount, self.clock())

    def settle(self, reservation: Reservation, cost: Decimal | None) -> None:
        entry = self._local.get(reservation.key, {}).get(reservation.call_id)
        if entry is None:
            return
        entry.finished = True
        entry.cost = cost if cost is not None else entry.reservation
        entry.started = self.clock()

    def sweep(self, max_sessions: int) -> None:
        now = self.clock()
        for _ in range(min(max_sessions, len(self._local))):
            key, local = next(iter(self._local.items()))
            state = self.source.get(key)
            for call_id, entry in list(local.items()):
                if self._gone(call_id, entry, state, now):
                    del local[call_id]
            if local:
                self._local.move_to_end(key)
            else:
                del self._local[key]
                self._local_budget.pop(key, None)

    def _gone(self, call_id: str, entry: _Local, state: SessionState | None, now: float) -> bool:
        return (state is not None and call_id in state.recent_finished) or now - entry.started > self.forget_after_s

    def _view(
        self, key: bytes, policy: TenantPolicy, requested_budget: Decimal | None = None
    ) -> tuple[SessionView, SessionState | None]:
        state = self.source.get(key)
        known = self.source.ready
        spent = state.spent_usd if state else Decimal(0)
        reserved = state.reserved_usd if state else Decimal(0)
        now = self.clock()
        local = self._local.get(key)
        if local:
            for call_id, entry in list(local.items()):
                if self._gone(call_id, entry, state, now):
                    del local[call_id]
                    continue
                in_table = state is not None and call_id in state.in_flight
                if entry.finished:
                    spent += entry.cost or Decimal(0)
                    if in_table and state is not None:
                        reserved -= state.in_flight[call_id]
                elif not in_table:
                    reserved += entry.reservation
                if not (in_table and not entry.finished) and now - entry.started > self.stale_after_s:
                    known = False
            if not local:
                del self._local[key]
                self._local_budget.pop(key, None)
        if state is not None and state.budget_usd is not None:
            budget: Decimal | None = state.budget_usd
            if not state.budget_locked:
                budget = lowered_budget(budget, requested_budget)
        else:
            budget = lowered_budget(self._local_budget.get(key), requested_budget)
            if budget is None:
                budget = policy.default_budget_usd
        view = SessionView(
            spent_usd=spent,
            reserved_usd=reserved,
            budget_usd=budget,
            iterations=state.iterations if state else 0,
            paused=state.paused if state else False,
            pause_reason=state.pause_reason if state else None,
            known=known,
        )
        return view, state


def _shown(view: SessionView) -> tuple[object, ...]:
    """What the JSON body and headers show: the Decimals as strings, trailing zeros included."""
    return (str(view.spent_usd), str(view.reserved_usd), str(view.budget_usd), view.known, view.paused)


index = st.integers(min_value=0, max_value=1000)
admit_step = st.tuples(
    st.just("admit"),
    st.sampled_from(SESSIONS),
    st.sampled_from(CALLS),
    st.sampled_from(AMOUNTS),
    st.sampled_from(BUDGETS),
    st.sampled_from(range(len(POLICIES))),
    st.booleans(),
)
settle_step = st.tuples(st.just("settle"), index, st.sampled_from(COSTS))
# Admissions and settlements weigh more, so sessions hold several entries of mixed ages.
step = st.one_of(
    admit_step,
    admit_step,
    admit_step,
    settle_step,
    settle_step,
    st.tuples(st.just("track"), st.sampled_from(SESSIONS), st.sampled_from(CALLS), st.sampled_from(AMOUNTS)),
    st.tuples(st.just("started"), index),
    st.tuples(st.just("finished"), index, st.sampled_from(COSTS), st.sampled_from(["ok", "refused", "error"])),
    st.tuples(st.just("control"), st.sampled_from(SESSIONS), st.sampled_from(["pause", "resume", "set_budget"])),
    st.tuples(st.just("drop"), st.sampled_from(SESSIONS)),
    st.tuples(st.just("tick"), st.sampled_from(TICKS)),
    st.tuples(st.just("sweep"), st.integers(min_value=1, max_value=3)),
    st.tuples(st.just("ready"), st.booleans()),
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=10, max_size=100), gateways=st.sampled_from([1, 2]), look_every_step=st.booleans())
def test_kept_sums_match_the_full_pass_after_every_step(
    steps: list[tuple[object, ...]], gateways: int, look_every_step: bool
) -> None:
    clock = Clock()
    table = Table()
    new = BudgetLedger(table, stale_after_s=STALE, forget_after_s=FORGET, gateways=gateways, clock=clock)
    ref = ReferenceLedger(table, clock, gateways=gateways)
    granted: list[Reservation] = []
    for op in steps:
        kind = op[0]
        if kind == "admit":
            _, session, call_id, amount, requested, policy_i, share = op
            assert isinstance(session, str) and isinstance(call_id, str) and isinstance(policy_i, int)
            policy = POLICIES[policy_i]
            got = new.admit(
                tenant="acme",
                session_id=session,
                call_id=call_id,
                amount_usd=amount,  # type: ignore[arg-type]
                requested_budget_usd=requested,  # type: ignore[arg-type]
                policy=policy,
                share=bool(share),
            )
            want = ref.admit(session_key("acme", session), call_id, amount, requested, policy, bool(share))  # type: ignore[arg-type]
            assert got == want
            if isinstance(got, Reservation):
                assert _shown(got_view(new, session)) == _shown(ref._view(session_key("acme", session), POLICIES[0])[0])
                granted.append(got)
            elif not isinstance(got, Reservation):
                assert str(got.view.spent_usd) == str(want.view.spent_usd)  # type: ignore[union-attr]
                assert str(got.view.reserved_usd) == str(want.view.reserved_usd)  # type: ignore[union-attr]
        elif kind == "track":
            _, session, call_id, amount = op
            r = Reservation(session_key("acme", str(session)), str(call_id), amount, None)  # type: ignore[arg-type]
            new.track(r)
            ref._add(r.key, r.call_id, r.amount_usd)
            granted.append(r)
        elif kind in ("settle", "started", "finished") and granted:
            r = granted[int(op[1]) % len(granted)]  # type: ignore[call-overload]
            tenant, _, session = r.key.decode().partition("/")
            common = {
                "tenant": tenant,
                "session_id": session,
                "call_id": r.call_id,
                "provider": "openai",
                "endpoint": "x",
            }
            if kind == "settle":
                new.settle(r, op[2])  # type: ignore[arg-type]
                ref.settle(r, op[2])  # type: ignore[arg-type]
            elif kind == "started":
                table.apply(CallStarted(**common, reserved_usd=r.amount_usd, budget_usd=r.budget_usd))  # type: ignore[arg-type]
            else:
                table.apply(
                    CallFinished(**common, status_code=200, cost_usd=op[2], outcome=op[3], reserved_usd=r.amount_usd)  # type: ignore[arg-type]
                )
        elif kind == "control":
            _, session, action = op
            table.apply(
                Control(tenant="acme", session_id=str(session), action=action, budget_usd=Decimal("1.5"))  # type: ignore[arg-type]
            )
        elif kind == "drop":
            table.drop(session_key("acme", str(op[1])))
        elif kind == "tick":
            clock.now += float(op[1])  # type: ignore[arg-type]
        elif kind == "sweep":
            new.sweep(int(op[1]))  # type: ignore[call-overload]
            ref.sweep(int(op[1]))  # type: ignore[call-overload]
        elif kind == "ready":
            table.ready = bool(op[1])
        if look_every_step:
            for session in SESSIONS:
                key = session_key("acme", session)
                for policy in POLICIES:
                    got_v, want_v = got_view(new, session, policy), ref._view(key, policy)[0]
                    assert got_v == want_v
                    assert _shown(got_v) == _shown(want_v)
        assert set(new._local) == set(ref._local)
        assert list(new._local) == list(ref._local), "the sweep visits sessions in the same order"
        assert new._local_budget == ref._local_budget
        for key, session_local in new._local.items():
            assert set(session_local.entries) == set(ref._local[key])


def got_view(ledger: BudgetLedger, session: str, policy: TenantPolicy | None = None) -> SessionView:
    return ledger.view("acme", session, policy or POLICIES[0])


class CountingEffect:
    def __init__(self) -> None:
        self.calls = 0
        self.real = budget_local.effect

    def __call__(self, *args: object) -> tuple[Decimal | None, Decimal | None, bool]:
        self.calls += 1
        return self.real(*args)  # type: ignore[arg-type]


def test_admissions_on_a_session_with_100000_unreflected_entries_do_constant_work_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Workers down: entries pile up on one busy session; each more call still visits O(1) entries."""
    clock = Clock()
    ledger = BudgetLedger(Table(), clock=clock)
    policy = TenantPolicy()  # no budget: every call is admitted

    def call(i: int) -> None:
        r = ledger.admit(
            tenant="acme",
            session_id="busy",
            call_id=f"c{i}",
            amount_usd=Decimal("0.10"),
            requested_budget_usd=None,
            policy=policy,
        )
        assert isinstance(r, Reservation)
        ledger.settle(r, Decimal("0.01"))
        clock.now += 0.001

    for i in range(100_000):
        call(i)
    counter = CountingEffect()
    monkeypatch.setattr(budget_local, "effect", counter)
    n = 1000
    for i in range(100_000, 100_000 + n):
        call(i)
    view = ledger.view("acme", "busy", policy)
    # Per call: the admission's entry, the settlement's removal and re-adding, a little slack.
    assert counter.calls <= 5 * n, counter.calls
    assert view.spent_usd == Decimal("0.01") * (100_000 + n) and view.reserved_usd == 0
    assert not view.known, "entries 100 s old that no table reflects: the workers are not folding"


def test_a_table_change_on_a_session_with_100000_entries_recounts_only_the_calls_it_lists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Workers behind: the table folds one old call per new call; each change re-counts the
    calls the states list (at most the in-flight and the recently finished), not 100,000."""
    clock = Clock()
    table = Table()
    ledger = BudgetLedger(table, clock=clock)
    policy = TenantPolicy()

    def call(i: int) -> Reservation:
        r = ledger.admit(
            tenant="acme",
            session_id="busy",
            call_id=f"c{i}",
            amount_usd=Decimal("0.10"),
            requested_budget_usd=None,
            policy=policy,
        )
        assert isinstance(r, Reservation)
        ledger.settle(r, Decimal("0.01"))
        clock.now += 0.001
        return r

    pending = [call(i) for i in range(100_000)]
    counter = CountingEffect()
    monkeypatch.setattr(budget_local, "effect", counter)
    n = 500
    for i, old in enumerate(pending[:n]):
        common = {"tenant": "acme", "session_id": "busy", "call_id": old.call_id, "provider": "openai", "endpoint": "x"}
        table.apply(CallStarted(**common, reserved_usd=old.amount_usd))  # type: ignore[arg-type]
        table.apply(CallFinished(**common, status_code=200, cost_usd=Decimal("0.01"), reserved_usd=old.amount_usd))  # type: ignore[arg-type]
        call(100_000 + i)
    view = ledger.view("acme", "busy", policy)
    assert counter.calls <= 10 * n, counter.calls
    assert view.spent_usd == Decimal("0.01") * (100_000 + n)
    assert len(ledger._local[session_key("acme", "busy")].entries) == 100_000
