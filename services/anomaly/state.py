"""Per-session window state, as stored in the Faust table.

Values are msgspec structs encoded as JSON bytes (not ``faust.Record``), so the table's
changelog is plain data any tool can replay, and the fold below is a pure function that
tests exercise without a broker. Times are the events' own timestamps, never the clock of
the worker, so replaying the changelog or the calls topic gives the same state and the same
cooldown decisions.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec

from services.anomaly.errors import StateDecodeError
from services.common.codec import JsonCodec
from services.common.events import CallFinished, CallStarted

STATE_VERSION = 1
# Calls kept for the per-minute detectors; bounded so a flood cannot grow a value unboundedly
# (a session above this many calls a minute has long tripped the velocity detector).
MAX_RECENT = 1000


class Iteration(msgspec.Struct, frozen=True, kw_only=True):
    """One finished call, as the detectors see it."""

    ts: datetime
    iteration: int | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal | None = None
    status_code: int = 200
    ok: bool = True
    fingerprint: str | None = None


class SessionState(msgspec.Struct, kw_only=True):
    v: int = STATE_VERSION
    tenant: str = ""
    session_id: str | None = None
    project: str | None = None
    team: str | None = None
    budget_usd: Decimal | None = None
    spent_usd: Decimal = Decimal(0)
    calls: int = 0
    consecutive_errors: int = 0
    # The last N iterations (N = the tenant's window), oldest first.
    window: list[Iteration] = msgspec.field(default_factory=list)
    # Calls of roughly the last minute (event time), for call and spend velocity.
    recent: list[Iteration] = msgspec.field(default_factory=list)
    # detector name -> event time of its last alert for this session (the cooldown).
    last_alert: dict[str, datetime] = msgspec.field(default_factory=dict)


# Unlike events and budget state, a window was never refused for a newer ``v``; that stays so.
_codec = JsonCodec[SessionState](SessionState, StateDecodeError, what="session window")


def encode_state(state: SessionState) -> bytes:
    return _codec.encode(state)


def decode_state(data: bytes) -> SessionState:
    return _codec.decode(data)


def note_started(state: SessionState, event: CallStarted) -> None:
    """A call started: learn the session's budget and labels (CallFinished has no budget)."""
    state.tenant = event.tenant
    state.session_id = event.session_id
    if event.budget_usd is not None:
        state.budget_usd = event.budget_usd
    state.project = event.project or state.project
    state.team = event.team or state.team


def note_finished(state: SessionState, event: CallFinished, window: int) -> Iteration:
    """Fold one finished call into the window and the per-minute list; returns its entry."""
    state.tenant = event.tenant
    state.session_id = event.session_id
    state.project = event.project or state.project
    state.team = event.team or state.team
    ok = event.outcome == "ok" and event.status_code < 400
    entry = Iteration(
        ts=event.ts,
        iteration=event.iteration,
        input_tokens=event.input_tokens,
        output_tokens=event.output_tokens,
        cost_usd=event.cost_usd,
        status_code=event.status_code,
        ok=ok,
        fingerprint=event.fingerprint,
    )
    state.calls += 1
    if event.cost_usd is not None:
        state.spent_usd += event.cost_usd
    state.consecutive_errors = 0 if ok else state.consecutive_errors + 1
    state.window = [*state.window, entry][-window:]
    horizon = event.ts.timestamp() - 60.0
    state.recent = [e for e in [*state.recent, entry] if e.ts.timestamp() > horizon][-MAX_RECENT:]
    return entry
