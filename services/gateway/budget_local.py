"""One session's calls that this gateway admitted and the session table does not reflect yet.

Admission adds to the table's ``spent``/``reserved`` a correction per local entry (see
services.gateway.budget). Summing the entries on every call made a call cost O(entries),
and entries pile up exactly when the budget workers are down or behind. So the sums are
kept here, computed against one table state (identified by the source's version token) and
updated entry by entry as calls are admitted, settled and expire; a change of the table's
state for this session re-counts only the calls the old and new states list (in flight,
recently finished), or all entries when there are fewer of those.

Entries are kept in order of ``started`` (the clock is monotonic and a settled entry moves
to the back with its new ``started``), so the expired ones are always at the front, and the
oldest entry that can make the state "unknown" is the first such one from the front.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal

from services.common.session_state import SessionState

_ZERO = Decimal(0)
# A token no source returns: the next sync recomputes the sums.
RESYNC: object = object()


@dataclass(slots=True)
class LocalEntry:
    reservation: Decimal
    started: float
    cost: Decimal | None = None
    finished: bool = False


class _Sum:
    """A running sum of Decimal terms that also reports the representation (exponent) the
    plain left-to-right sum of the current terms would have: added and removed terms leave
    their exponent in the running total, and str() of a view's money must not change."""

    __slots__ = ("exps", "total")

    def __init__(self) -> None:
        self.total = _ZERO
        self.exps: dict[int, int] = {}

    def add(self, term: Decimal) -> None:
        self.total += term
        exp = _exponent(term)
        self.exps[exp] = self.exps.get(exp, 0) + 1

    def remove(self, term: Decimal) -> None:
        self.total -= term
        exp = _exponent(term)
        left = self.exps[exp] - 1
        if left:
            self.exps[exp] = left
        else:
            del self.exps[exp]

    def onto(self, base: Decimal) -> Decimal:
        """``base`` plus the terms, as ``base + t1 + t2 + ...`` would be (exact: money fits the context)."""
        if not self.exps:
            return base
        return base + self.total.quantize(_unit(min(self.exps)))


def _exponent(d: Decimal) -> int:
    exp = d.as_tuple().exponent
    assert isinstance(exp, int), "money is finite"
    return exp


_UNITS: dict[int, Decimal] = {}


def _unit(exp: int) -> Decimal:
    unit = _UNITS.get(exp)
    if unit is None:
        unit = _UNITS[exp] = Decimal((0, (1,), exp))
    return unit


def effect(call_id: str, entry: LocalEntry, state: SessionState | None) -> tuple[Decimal | None, Decimal | None, bool]:
    """What the entry adds to spent and to reserved, and whether it can make the state unknown
    (any entry but a running call the table holds as started)."""
    in_table = state is not None and call_id in state.in_flight
    if entry.finished:
        held = -state.in_flight[call_id] if in_table and state is not None else None
        return entry.cost or _ZERO, held, True
    if not in_table:
        return None, entry.reservation, True
    return None, None, False


def gone(call_id: str, entry: LocalEntry, state: SessionState | None, now: float, forget_after_s: float) -> bool:
    """The table has folded the call's end, or the entry is past any use."""
    return (state is not None and call_id in state.recent_finished) or now - entry.started > forget_after_s


@dataclass(slots=True)
class SessionLocal:
    entries: OrderedDict[str, LocalEntry] = field(default_factory=OrderedDict)
    # The table state (and the source's token for it) the sums were computed against.
    token: object = RESYNC
    state: SessionState | None = None
    spent: _Sum = field(default_factory=_Sum)
    reserved: _Sum = field(default_factory=_Sum)
    # ``started`` of the oldest entry that can make the state unknown (None: no such entry);
    # meaningful only when ``oldest_known``, else found again from the front.
    oldest: float | None = None
    oldest_known: bool = False

    def refresh(self, token: object, state: SessionState | None, now: float, forget_after_s: float) -> None:
        """The table's state changed: only the calls it lists (in flight before or now, finished
        now) can count differently, so with more entries than that only those are re-counted.
        Each state must be a new object (a change never mutates the previous one, as with the
        replica's decoded states)."""
        old = self.state
        if self.token is RESYNC or (state is not None and state is old):
            self.recompute(token, state, now, forget_after_s)
            return
        listed: list[str] = []
        if old is not None:
            listed.extend(old.in_flight)
        if state is not None:
            listed.extend(state.in_flight)
            listed.extend(state.recent_finished)
        if len(listed) >= len(self.entries):
            self.recompute(token, state, now, forget_after_s)
            return
        # An entry never stays listed in the finished calls of the state it was counted
        # against (dropped, or a resync), so those of ``old`` need no look.
        entries = self.entries
        # In C, walking the smaller side (the listed ids).
        touched = [(call_id, entries[call_id]) for call_id in entries.keys() & set(listed)]
        for call_id, entry in touched:
            self._uncount(call_id, entry)
        self.token, self.state = token, state
        if touched:
            self.oldest_known = False
        for call_id, entry in touched:
            if gone(call_id, entry, state, now, forget_after_s):
                del entries[call_id]
            else:
                self._count(call_id, entry)
        self.expire(now, forget_after_s)

    def recompute(self, token: object, state: SessionState | None, now: float, forget_after_s: float) -> None:
        """Drop what the table reflects or what expired, sum the rest again."""
        self.token, self.state = token, state
        self.spent, self.reserved = _Sum(), _Sum()
        self.oldest, self.oldest_known = None, True
        entries = self.entries
        for call_id, entry in list(entries.items()):
            if gone(call_id, entry, state, now, forget_after_s):
                del entries[call_id]
                continue
            self._count(call_id, entry)

    def expire(self, now: float, forget_after_s: float) -> None:
        """Same table state: only time matters, and the expired entries are at the front."""
        entries = self.entries
        while entries:
            call_id, entry = next(iter(entries.items()))
            if not gone(call_id, entry, None, now, forget_after_s):
                return
            del entries[call_id]
            self._uncount(call_id, entry)

    def add(self, call_id: str, entry: LocalEntry) -> None:
        state = self.state
        if call_id in self.entries or (state is not None and call_id in state.recent_finished):
            # A call id seen again (a retry): rare, so the sums are simply recomputed.
            self.entries.pop(call_id, None)
            self.entries[call_id] = entry
            self.token = RESYNC
            return
        self.entries[call_id] = entry
        self._count(call_id, entry)

    def settle(self, call_id: str, cost: Decimal | None, now: float) -> None:
        entry = self.entries.get(call_id)
        if entry is None:
            return
        self._uncount(call_id, entry)
        entry.finished = True
        entry.cost = cost if cost is not None else entry.reservation
        entry.started = now
        self.entries.move_to_end(call_id)
        self._count(call_id, entry)

    def stale(self, now: float, stale_after_s: float) -> bool:
        """An entry that can make the state unknown has waited longer than ``stale_after_s``."""
        if not self.oldest_known:
            # Skips only running calls the table holds as started: as many as run at once.
            self.oldest = None
            for call_id, entry in self.entries.items():
                if effect(call_id, entry, self.state)[2]:
                    self.oldest = entry.started
                    break
            self.oldest_known = True
        return self.oldest is not None and now - self.oldest > stale_after_s

    def _count(self, call_id: str, entry: LocalEntry) -> None:
        if self.token is RESYNC:
            return  # the sums are recomputed at the next sync anyway
        spent, reserved, counts_for_staleness = effect(call_id, entry, self.state)
        if spent is not None:
            self.spent.add(spent)
        if reserved is not None:
            self.reserved.add(reserved)
        if counts_for_staleness and self.oldest_known and self.oldest is None:
            # Entries arrive in order of ``started``: an earlier one would be ``oldest`` already.
            self.oldest = entry.started

    def _uncount(self, call_id: str, entry: LocalEntry) -> None:
        if self.token is RESYNC:
            return
        spent, reserved, counts_for_staleness = effect(call_id, entry, self.state)
        if spent is not None:
            self.spent.remove(spent)
        if reserved is not None:
            self.reserved.remove(reserved)
        if counts_for_staleness:
            self.oldest_known = False
