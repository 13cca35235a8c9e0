"""A session's financial state: the value of the budget worker's table, and its fold.

It lives in ``common`` (not in the Faust app) because gateways decode the table's changelog
without importing Faust. The fold is a pure function so the worker, the tests and any
rebuild from the topics compute exactly the same state.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec

from services.common.codec import JsonCodec
from services.common.events import (
    CallFinished,
    CallStarted,
    Control,
    ReservationCode,
    ReservationDecision,
    ReservationRequest,
)

STATE_VERSION = 1
# Ids of finished calls kept per session so that a redelivered CallStarted/CallFinished is
# recognised; redelivery happens within one uncommitted batch, far fewer than this.
RECENT_FINISHED_MAX = 256

BUDGET_APP_SUFFIX = "budget"
SESSIONS_TABLE = "sessions"


def budget_app_id(topic_prefix: str) -> str:
    """The Faust app id (also its consumer group) of the budget workers."""
    return f"{topic_prefix}{BUDGET_APP_SUFFIX}"


def changelog_topic(topic_prefix: str) -> str:
    """Faust names a table's changelog ``<app id>-<table>-changelog``; gateways replicate it."""
    return f"{budget_app_id(topic_prefix)}-{SESSIONS_TABLE}-changelog"


# gc=False: gateways and workers hold many of them, and the cyclic GC walking them all
# showed up as milliseconds in budget-check's tail. A state holds no references back to
# itself (scalars, a dict of Decimals, a list of str), so it cannot be part of a cycle.
class SessionState(msgspec.Struct, kw_only=True, gc=False):
    v: int = STATE_VERSION
    tenant: str
    session_id: str
    spent_usd: Decimal = Decimal(0)
    # Sum of ``in_flight``: reservations of calls started and not finished.
    reserved_usd: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    iterations: int = 0
    last_iteration: int | None = None
    budget_usd: Decimal | None = None
    # Set once an admin set the budget: from then on request headers no longer change it.
    budget_locked: bool = False
    project: str | None = None
    team: str | None = None
    paused: bool = False
    pause_reason: str | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    unpriced_calls: int = 0
    in_flight: dict[str, Decimal] = msgspec.field(default_factory=dict)
    # Oldest first; bounded by RECENT_FINISHED_MAX.
    recent_finished: list[str] = msgspec.field(default_factory=list)

    @property
    def remaining_usd(self) -> Decimal | None:
        if self.budget_usd is None:
            return None
        return self.budget_usd - self.spent_usd - self.reserved_usd


class SessionStateDecodeError(ValueError):
    """Raised for bytes that are not a SessionState this build understands."""


_codec = JsonCodec[SessionState](SessionState, SessionStateDecodeError, what="session state", newest=STATE_VERSION)


def encode_state(state: SessionState) -> bytes:
    return _codec.encode(state)


def decode_state(data: bytes) -> SessionState:
    return _codec.decode(data)


def lowered_budget(current: Decimal | None, requested: Decimal | None) -> Decimal | None:
    """A call may set a budget on a new session or lower it; raising takes the admin API."""
    if requested is None:
        return current
    if current is None or requested < current:
        return requested
    return current


FoldEvent = CallStarted | CallFinished | Control


def fold(state: SessionState | None, event: FoldEvent) -> tuple[SessionState, bool]:
    """Apply one event; returns the new state and whether it changed (False for a redelivery)."""
    if state is None:
        state = SessionState(tenant=event.tenant, session_id=event.session_id or "", first_seen=event.ts)
    if isinstance(event, Control):
        return _control(state, event), True
    if event.call_id in state.recent_finished:
        return state, False
    if isinstance(event, CallStarted):
        if event.call_id in state.in_flight:
            return state, False
        state.in_flight[event.call_id] = event.reserved_usd
        state.reserved_usd += event.reserved_usd
        if not state.budget_locked:
            state.budget_usd = lowered_budget(state.budget_usd, event.budget_usd)
    else:
        reservation = state.in_flight.pop(event.call_id, None)
        if reservation is not None:
            state.reserved_usd -= reservation
        state.recent_finished.append(event.call_id)
        del state.recent_finished[:-RECENT_FINISHED_MAX]
        if event.outcome == "refused":
            # Never sent upstream (refused, or a strict reservation released): no cost, no call.
            _seen(state, event.ts)
            return state, True
        # An unpriced call is charged its reservation rather than recorded as free.
        cost = event.cost_usd if event.cost_usd is not None else (reservation or event.reserved_usd)
        if event.cost_usd is None:
            state.unpriced_calls += 1
        state.spent_usd += cost
        state.input_tokens += event.input_tokens
        state.output_tokens += event.output_tokens
        state.calls += 1
        state.iterations += 1
    if event.iteration is not None:
        state.last_iteration = max(state.last_iteration or 0, event.iteration)
    state.project = event.project or state.project
    state.team = event.team or state.team
    _seen(state, event.ts)
    return state, True


def reserve(state: SessionState | None, request: ReservationRequest) -> tuple[SessionState, ReservationDecision]:
    """Strict mode: the session's single writer grants or refuses a reservation.

    A grant is recorded like a CallStarted (the gateway's CallStarted for the same call id is
    then a no-op), so the next request in the partition already sees it. A redelivered
    request for a call already in flight gets the same grant again.
    """
    if state is None:
        state = SessionState(tenant=request.tenant, session_id=request.session_id or "", first_seen=request.ts)
    code: ReservationCode = "granted"
    budget = state.budget_usd if state.budget_locked else lowered_budget(state.budget_usd, request.budget_usd)
    if request.call_id in state.recent_finished:
        code = "already_finished"
    elif request.call_id in state.in_flight:
        code = "granted"
    elif state.paused:
        code = "session_paused"
    elif budget is not None and state.spent_usd + state.reserved_usd + request.amount_usd > budget:
        code = "budget_exceeded"
    else:
        state.in_flight[request.call_id] = request.amount_usd
        state.reserved_usd += request.amount_usd
        state.budget_usd = budget
        _seen(state, request.ts)
    decision = ReservationDecision(
        tenant=request.tenant,
        session_id=request.session_id,
        call_id=request.call_id,
        gateway_id=request.gateway_id,
        code=code,
        spent_usd=state.spent_usd,
        reserved_usd=state.reserved_usd,
        budget_usd=budget,
    )
    return state, decision


def _control(state: SessionState, event: Control) -> SessionState:
    if event.action == "set_budget":
        state.budget_usd = event.budget_usd
        state.budget_locked = True
    elif event.action == "pause":
        state.paused, state.pause_reason = True, event.reason or "paused"
    else:
        state.paused, state.pause_reason = False, None
    _seen(state, event.ts)
    return state


def _seen(state: SessionState, ts: datetime) -> None:
    if state.first_seen is None or ts < state.first_seen:
        state.first_seen = ts
    if state.last_seen is None or ts > state.last_seen:
        state.last_seen = ts
