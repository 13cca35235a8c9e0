from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal

from services.common.config import TenantPolicy
from services.common.events import CallFinished, CallStarted, Control, session_key
from services.common.session_state import SessionState, decode_state, encode_state, fold
from services.gateway.budget import BudgetLedger, Deferral, Refusal, Reservation

KEY = session_key("acme", "s1")
OPEN = TenantPolicy()
CLOSED = TenantPolicy(on_unknown_state="closed")


@dataclass
class Table:
    """The replica's role, fed by the real fold (what the changelog would carry)."""

    ready: bool = True
    states: dict[bytes, SessionState] = field(default_factory=dict)
    versions: dict[bytes, object] = field(default_factory=dict)

    def get(self, key: bytes) -> SessionState | None:
        return self.states.get(key)

    def version(self, key: bytes) -> object:
        return self.versions.get(key)

    def apply(self, event) -> None:
        # A copy: a state returned before is never mutated (as with the replica's decoded states).
        old = self.states.get(event.key)
        self.states[event.key], _ = fold(decode_state(encode_state(old)) if old is not None else None, event)
        # A fresh object per change (ints past 256 are not shared), like the replica's bytes.
        self.versions[event.key] = object()


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def admit(ledger: BudgetLedger, call_id: str, amount: str = "0.10", budget: str | None = "1.00", policy=OPEN):
    return ledger.admit(
        tenant="acme",
        session_id="s1",
        call_id=call_id,
        amount_usd=Decimal(amount),
        requested_budget_usd=Decimal(budget) if budget else None,
        policy=policy,
    )


def started(r: Reservation) -> CallStarted:
    return CallStarted(
        tenant="acme",
        session_id="s1",
        call_id=r.call_id,
        provider="openai",
        endpoint="x",
        reserved_usd=r.amount_usd,
        budget_usd=r.budget_usd,
    )


def finished(r: Reservation, cost: str) -> CallFinished:
    return CallFinished(
        tenant="acme",
        session_id="s1",
        call_id=r.call_id,
        provider="openai",
        endpoint="x",
        status_code=200,
        cost_usd=Decimal(cost),
        reserved_usd=r.amount_usd,
    )


def test_fifty_concurrent_reservations_admit_exactly_ten():
    ledger = BudgetLedger(Table())
    results = [admit(ledger, f"c{i}") for i in range(50)]
    admitted = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, Refusal)]
    assert len(admitted) == 10
    assert {r.code for r in refused} == {"budget_exceeded"} and all(r.status == 402 for r in refused)


def test_no_double_count_once_table_reflects_started_and_no_gap_before_finished():
    table = Table()
    ledger = BudgetLedger(table)
    r = admit(ledger, "a", amount="0.40")
    assert isinstance(r, Reservation)
    assert ledger.view("acme", "s1", OPEN).reserved_usd == Decimal("0.40")
    table.apply(started(r))
    v = ledger.view("acme", "s1", OPEN)
    assert (v.reserved_usd, v.spent_usd) == (Decimal("0.40"), Decimal(0)), "reflected reservation counted once"
    ledger.settle(r, Decimal("0.25"))
    v = ledger.view("acme", "s1", OPEN)
    assert (v.reserved_usd, v.spent_usd) == (Decimal(0), Decimal("0.25")), "actual cost counted before the table has it"
    table.apply(finished(r, "0.25"))
    v = ledger.view("acme", "s1", OPEN)
    assert (v.reserved_usd, v.spent_usd) == (Decimal(0), Decimal("0.25"))
    assert KEY not in ledger._local, "local entry dropped once reflected"


def test_settle_before_table_saw_started():
    table = Table()
    ledger = BudgetLedger(table)
    r = admit(ledger, "a", amount="0.40")
    assert isinstance(r, Reservation)
    ledger.settle(r, Decimal("0.10"))
    assert ledger.view("acme", "s1", OPEN).spent_usd == Decimal("0.10")
    table.apply(started(r))
    v = ledger.view("acme", "s1", OPEN)
    assert (v.reserved_usd, v.spent_usd) == (Decimal(0), Decimal("0.10"))


def test_budget_header_sets_then_lowers_never_raises_and_tenant_default():
    table = Table()
    ledger = BudgetLedger(table)
    r = admit(ledger, "a", budget="1.00")
    assert isinstance(r, Reservation) and r.budget_usd == Decimal("1.00")
    assert admit(ledger, "b", budget="5.00").budget_usd == Decimal("1.00")
    table.apply(started(r))
    assert admit(ledger, "c", budget="9").budget_usd == Decimal("1.00")
    assert admit(ledger, "d", budget="0.5").budget_usd == Decimal("0.5")
    fresh = BudgetLedger(Table())
    policy = TenantPolicy(default_budget_usd=Decimal("0.15"))
    assert isinstance(admit(fresh, "x", budget=None, policy=policy), Reservation)
    assert isinstance(admit(fresh, "y", budget=None, policy=policy), Refusal)


def test_paused_session_refused():
    table = Table()
    table.apply(Control(tenant="acme", session_id="s1", action="pause", reason="runaway loop"))
    r = admit(BudgetLedger(table), "a")
    assert isinstance(r, Refusal) and r.code == "session_paused" and r.status == 402


def test_unknown_state_open_by_default_closed_per_tenant():
    table = Table(ready=False)
    ledger = BudgetLedger(table)
    assert isinstance(admit(ledger, "a"), Reservation)
    r = admit(ledger, "b", policy=CLOSED)
    assert isinstance(r, Refusal) and r.code == "budget_state_unknown" and r.status == 503
    assert (ledger.stats.unknown_open, ledger.stats.unknown_closed) == (1, 1)


def test_state_unknown_when_workers_stop_folding():
    clock = Clock()
    table = Table()
    ledger = BudgetLedger(table, stale_after_s=10, clock=clock)
    r = admit(ledger, "a")
    assert isinstance(r, Reservation)
    clock.now += 11
    assert not ledger.view("acme", "s1", OPEN).known
    assert isinstance(admit(ledger, "b", policy=CLOSED), Refusal)
    table.apply(started(r))
    assert ledger.view("acme", "s1", OPEN).known


@dataclass
class CountingTable(Table):
    lookups: int = 0

    def get(self, key: bytes) -> SessionState | None:
        self.lookups += 1
        return super().get(key)

    def version(self, key: bytes) -> object:
        self.lookups += 1
        return super().version(key)


def one_call(ledger: BudgetLedger, table: Table, session: str, *, fold_it: bool) -> Reservation:
    """A call on ``session`` admitted and settled; folded into the table when ``fold_it``."""
    r = ledger.admit(
        tenant="acme",
        session_id=session,
        call_id=f"call-{session}",
        amount_usd=Decimal("0.10"),
        requested_budget_usd=Decimal("1.00"),
        policy=OPEN,
    )
    assert isinstance(r, Reservation)
    ledger.settle(r, Decimal("0.05"))
    if fold_it:
        table.apply(
            CallStarted(
                tenant="acme",
                session_id=session,
                call_id=r.call_id,
                provider="openai",
                endpoint="x",
                reserved_usd=r.amount_usd,
                budget_usd=r.budget_usd,
            )
        )
        table.apply(
            CallFinished(
                tenant="acme",
                session_id=session,
                call_id=r.call_id,
                provider="openai",
                endpoint="x",
                status_code=200,
                cost_usd=Decimal("0.05"),
                reserved_usd=r.amount_usd,
            )
        )
    return r


def test_sessions_that_never_call_again_are_swept_once_folded():
    table = Table()
    ledger = BudgetLedger(table)
    for i in range(100):
        one_call(ledger, table, f"idle{i}", fold_it=True)
    # Each admission sweeps two sessions ahead of it, so most idle ones are gone already.
    assert len(ledger) < 60
    # Calls on other sessions, not folded yet (in flight elsewhere): the idle ones all go,
    # the unreflected ones stay, still counted.
    for i in range(60):
        one_call(ledger, table, f"busy{i}", fold_it=False)
    assert set(ledger._local) == {session_key("acme", f"busy{i}") for i in range(60)}
    assert ledger.view("acme", "busy0", OPEN).spent_usd == Decimal("0.05")
    v = ledger.view("acme", "idle7", OPEN)
    assert (v.spent_usd, v.reserved_usd, v.budget_usd) == (Decimal("0.05"), Decimal(0), Decimal("1.00"))


def test_sweep_keeps_unreflected_entries_until_they_expire():
    clock = Clock()
    table = Table()
    ledger = BudgetLedger(table, forget_after_s=600, clock=clock)
    one_call(ledger, table, "lost", fold_it=False)
    for i in range(50):
        one_call(ledger, table, f"other{i}", fold_it=True)
    lost = session_key("acme", "lost")
    # The last session is swept by the next admission, the unreflected one is kept.
    assert set(ledger._local) == {lost, session_key("acme", "other49")}, "an unreflected cost is never dropped early"
    assert ledger.view("acme", "lost", OPEN).spent_usd == Decimal("0.05")
    clock.now += 601
    one_call(ledger, table, "late", fold_it=True)
    assert set(ledger._local) == {session_key("acme", "late")}


def test_sweep_work_per_admission_is_bounded():
    table = CountingTable()
    ledger = BudgetLedger(table)
    for i in range(1000):
        one_call(ledger, table, f"pending{i}", fold_it=False)
    table.lookups = 0
    one_call(ledger, table, "one-more", fold_it=False)
    # The admission's own view, then the sweep's sessions (their version, and their state if
    # it changed since last time): never a scan of the 1,000 pending.
    assert table.lookups <= 1 + 2 * ledger.sweep_per_entry


def test_two_gateways_blind_to_each_other_pass_the_budget_by_one_call_each_at_most():
    """Both gateways admit a burst before the table reflects anything: each keeps to its
    share of what the table leaves, plus at most one call."""
    table = Table()
    gateways = [BudgetLedger(table, gateways=2) for _ in range(2)]
    admitted: list[tuple[BudgetLedger, Reservation]] = []
    for i in range(50):
        ledger = gateways[i % 2]
        r = admit(ledger, f"c{i}", amount="0.30")
        if isinstance(r, Reservation):
            admitted.append((ledger, r))
        else:
            assert isinstance(r, Deferral), r
    # Each may hold $0.50 unseen: one $0.30 call, a second would make $0.60.
    assert len(admitted) == 2
    # The table reflects both: what is left ($0.40) is shared again, one call each allowed.
    for _, r in admitted:
        table.apply(started(r))
    more = [admit(g, f"d{i}", amount="0.30") for i, g in enumerate(gateways)]
    assert all(isinstance(r, Reservation) for r in more)
    total = Decimal("0.30") * (len(admitted) + len(more))
    assert total - Decimal("1.00") <= Decimal("0.30") * 2


def test_one_gateway_setting_admits_up_to_the_budget_at_once():
    ledger = BudgetLedger(Table(), gateways=1)
    assert sum(isinstance(admit(ledger, f"c{i}", amount="0.10"), Reservation) for i in range(50)) == 10


async def test_a_deferred_call_is_admitted_once_the_table_reflects_or_after_the_wait():
    table = Table()
    ledger = BudgetLedger(table, gateways=2)
    first = admit(ledger, "a", amount="0.40")
    assert isinstance(first, Reservation)

    async def reflect() -> None:
        await asyncio.sleep(0.05)
        table.apply(started(first))

    async def second() -> Reservation | Refusal:
        return await ledger.admit_within(
            tenant="acme",
            session_id="s1",
            call_id="b",
            amount_usd=Decimal("0.40"),
            requested_budget_usd=Decimal("1.00"),
            policy=OPEN,
            wait_s=5,
        )

    r, _ = await asyncio.gather(second(), reflect())
    assert isinstance(r, Reservation) and ledger.stats.deferred == 1
    # Nothing reflects "b": past the wait the call is decided on this gateway's view alone.
    third = await ledger.admit_within(
        tenant="acme",
        session_id="s1",
        call_id="c",
        amount_usd=Decimal("0.10"),
        requested_budget_usd=Decimal("1.00"),
        policy=OPEN,
        wait_s=0.05,
    )
    assert isinstance(third, Reservation) and ledger.stats.deferred == 2


def test_a_call_the_table_starts_stops_counting_as_stale_while_newer_entries_wait():
    """The oldest waiting entry decides "unknown"; once the table holds it as started (and
    the session has more entries than the table lists), the next oldest decides."""
    clock = Clock()
    table = Table()
    ledger = BudgetLedger(table, stale_after_s=10, clock=clock)
    first = admit(ledger, "a")
    assert isinstance(first, Reservation)
    clock.now += 9.5
    for call_id in ("b", "c", "d"):
        assert isinstance(admit(ledger, call_id), Reservation)
    assert ledger.view("acme", "s1", OPEN).known
    table.apply(started(first))
    clock.now += 1
    v = ledger.view("acme", "s1", OPEN)
    assert v.known, "a is running and the table has it; b, c, d waited 1 s"
    assert v.reserved_usd == Decimal("0.40")
    clock.now += 9.5
    assert not ledger.view("acme", "s1", OPEN).known, "b, c, d waited 10.5 s"
