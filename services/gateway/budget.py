"""Fast-mode admission: the session table's replica plus this gateway's own in-flight calls.

A call is admitted when ``spent + reserved + this reservation <= budget``, where spent and
reserved are the replica's (the budget worker's fold) corrected by what this gateway knows
and the table does not reflect yet:

- a reservation admitted here whose CallStarted the table has not folded: added to reserved;
- a call finished here whose CallFinished the table has not folded: its actual cost added to
  spent, and, if the table still holds its reservation, that reservation taken off reserved.

Each local entry is dropped as soon as the table reflects it, so nothing is counted twice
and no cost is forgotten in between. The corrections are kept summed per session
(services.gateway.budget_local), so a call costs O(1) however many entries a session
holds. Entries are checked when their session is looked up, and also by a sweep that each
new entry advances by a couple of sessions (round robin), so a session that never calls
again does not keep its last entry for ``forget_after_s``. The check and the reservation
happen with no ``await`` in between, so concurrent requests on one gateway cannot slip
past each other.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, Protocol

from services.common.config import TenantPolicy
from services.common.events import session_key
from services.common.session_state import SessionState, lowered_budget
from services.gateway.budget_local import LocalEntry, SessionLocal

RefusalCode = Literal["budget_exceeded", "session_paused", "budget_state_unknown"]


class StateSource(Protocol):
    @property
    def ready(self) -> bool: ...

    def get(self, key: bytes) -> SessionState | None:
        """The key's state; a change gives a new object, the one returned before is never mutated."""
        ...

    def version(self, key: bytes) -> object:
        """The same object (``is``) as long as the key's state is unchanged, another after any change."""
        ...


@dataclass(frozen=True, slots=True)
class SessionView:
    """What ``/v1/budget-check`` and the response headers report."""

    spent_usd: Decimal
    reserved_usd: Decimal
    budget_usd: Decimal | None
    iterations: int
    paused: bool
    pause_reason: str | None
    known: bool

    @property
    def remaining_usd(self) -> Decimal | None:
        if self.budget_usd is None:
            return None
        return max(Decimal(0), self.budget_usd - self.spent_usd - self.reserved_usd)


@dataclass(frozen=True, slots=True)
class Reservation:
    key: bytes
    call_id: str
    amount_usd: Decimal
    budget_usd: Decimal | None


@dataclass(frozen=True, slots=True)
class Deferral:
    """Admissible, but over this gateway's share of what the table leaves: wait for the
    table to reflect this gateway's own calls, then decide again."""

    view: SessionView


@dataclass(frozen=True, slots=True)
class Refusal:
    code: RefusalCode
    message: str
    view: SessionView
    status: int = 402


@dataclass
class AdmissionStats:
    admitted: int = 0
    refused_budget: int = 0
    refused_paused: int = 0
    unknown_open: int = 0
    unknown_closed: int = 0
    deferred: int = 0


@dataclass
class BudgetLedger:
    source: StateSource
    # A local entry the table has not reflected after this long means the budget workers
    # are not folding (down or far behind): the session's state is then "unknown".
    stale_after_s: float = 10.0
    # Local entries are forgotten after this long whatever happens, so memory stays bounded.
    forget_after_s: float = 600.0
    # Gateways sharing sessions in fast mode. Above 1, a gateway's calls the table does not
    # reflect yet may take at most 1/gateways of what the table leaves (or one call), so
    # gateways admitting at once, blind to each other, pass the budget by at most one call
    # each; a call over the share waits for the table (``admit_within``).
    gateways: int = 1
    clock: Callable[[], float] = time.monotonic
    # Sessions the sweep checks per new entry: more than one, so the sweep outpaces the (at
    # most one) session each entry adds and the set shrinks even when no session recurs.
    sweep_per_entry: int = 2
    stats: AdmissionStats = field(default_factory=AdmissionStats)
    # Ordered: the sweep takes sessions from the front and puts the unresolved ones at the
    # back, O(1) each (a plain dict's first item is found by skipping deleted slots).
    _local: OrderedDict[bytes, SessionLocal] = field(default_factory=OrderedDict)
    # Budget asked for by calls not yet folded (a new session's first calls).
    _local_budget: dict[bytes, Decimal] = field(default_factory=dict)

    def view(self, tenant: str, session_id: str, policy: TenantPolicy) -> SessionView:
        return self._view(session_key(tenant, session_id), policy)[0]

    def admit(
        self,
        *,
        tenant: str,
        session_id: str,
        call_id: str,
        amount_usd: Decimal,
        requested_budget_usd: Decimal | None,
        policy: TenantPolicy,
        share: bool = True,
    ) -> Reservation | Refusal | Deferral:
        key = session_key(tenant, session_id)
        view, state = self._view(key, policy, requested_budget_usd)
        if not view.known:
            if policy.on_unknown_state == "closed":
                self.stats.unknown_closed += 1
                return Refusal(
                    "budget_state_unknown", "session budget state is unavailable; retry later", view, status=503
                )
            self.stats.unknown_open += 1
        if view.paused:
            self.stats.refused_paused += 1
            return Refusal("session_paused", f"session is paused: {view.pause_reason or 'paused'}", view)
        if view.budget_usd is not None and view.spent_usd + view.reserved_usd + amount_usd > view.budget_usd:
            self.stats.refused_budget += 1
            return Refusal(
                "budget_exceeded",
                f"session budget ${view.budget_usd} would be exceeded: spent ${view.spent_usd}, "
                f"in flight ${view.reserved_usd}, this call up to ${amount_usd}",
                view,
            )
        if share and self.gateways > 1 and view.budget_usd is not None:
            in_table = (state.spent_usd + state.reserved_usd) if state is not None else Decimal(0)
            unseen = view.spent_usd + view.reserved_usd - in_table
            if unseen > 0 and unseen + amount_usd > (view.budget_usd - in_table) / self.gateways:
                return Deferral(view)
        self._add(key, call_id, amount_usd)
        if (state is None or state.budget_usd is None) and view.budget_usd is not None:
            self._local_budget[key] = view.budget_usd
        self.stats.admitted += 1
        return Reservation(key, call_id, amount_usd, view.budget_usd)

    async def admit_within(
        self,
        *,
        tenant: str,
        session_id: str,
        call_id: str,
        amount_usd: Decimal,
        requested_budget_usd: Decimal | None,
        policy: TenantPolicy,
        wait_s: float,
        poll_s: float = 0.01,
    ) -> Reservation | Refusal:
        """``admit``, waiting while deferred; past ``wait_s`` (the table is not reflecting this
        gateway's calls) the share no longer applies, as with a single gateway."""
        deadline = self.clock() + wait_s
        waited = False
        while True:
            result = self.admit(
                tenant=tenant,
                session_id=session_id,
                call_id=call_id,
                amount_usd=amount_usd,
                requested_budget_usd=requested_budget_usd,
                policy=policy,
                share=self.clock() < deadline,
            )
            if not isinstance(result, Deferral):
                return result
            if not waited:
                waited = True
                self.stats.deferred += 1
            await asyncio.sleep(poll_s)

    def track(self, reservation: Reservation) -> None:
        """Record a reservation granted elsewhere (strict mode) so local views include it."""
        self._add(reservation.key, reservation.call_id, reservation.amount_usd)

    def _add(self, key: bytes, call_id: str, amount_usd: Decimal) -> None:
        self.sweep(self.sweep_per_entry)
        session = self._local.get(key)
        if session is None:
            session = self._local[key] = SessionLocal()
        session.add(call_id, LocalEntry(amount_usd, self.clock()))

    def settle(self, reservation: Reservation, cost_usd: Decimal | None) -> None:
        """The call is over: its reservation gives way to its actual cost (the reservation when unpriced)."""
        session = self._local.get(reservation.key)
        if session is not None:
            session.settle(reservation.call_id, cost_usd, self.clock())

    def __len__(self) -> int:
        """Sessions with local entries (the table has not reflected them yet)."""
        return len(self._local)

    def sweep(self, max_sessions: int) -> None:
        """Check up to ``max_sessions`` sessions, oldest checked first: drop the entries the
        table reflects or that expired; a session still waiting goes to the back. A session
        whose table state did not change costs O(1) (its sums are kept)."""
        now = self.clock()
        for _ in range(min(max_sessions, len(self._local))):
            key, session = next(iter(self._local.items()))
            self._sync(key, session, now)
            if session.entries:
                self._local.move_to_end(key)
            else:
                del self._local[key]
                self._local_budget.pop(key, None)

    def _sync(self, key: bytes, session: SessionLocal, now: float) -> None:
        """Bring the session's sums to the table's current state and to ``now``."""
        token = self.source.version(key)
        if token is not session.token:
            session.refresh(token, self.source.get(key), now, self.forget_after_s)
        else:
            session.expire(now, self.forget_after_s)

    def _view(
        self, key: bytes, policy: TenantPolicy, requested_budget: Decimal | None = None
    ) -> tuple[SessionView, SessionState | None]:
        known = self.source.ready
        now = self.clock()
        session = self._local.get(key)
        if session is not None:
            self._sync(key, session, now)
            # The state the sums were computed against is the table's current one.
            state = session.state
            if not session.entries:
                del self._local[key]
                self._local_budget.pop(key, None)
                session = None
        else:
            state = self.source.get(key)
        spent = state.spent_usd if state else Decimal(0)
        reserved = state.reserved_usd if state else Decimal(0)
        if session is not None:
            spent = session.spent.onto(spent)
            reserved = session.reserved.onto(reserved)
            if session.stale(now, self.stale_after_s):
                known = False
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
