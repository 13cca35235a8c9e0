"""The seam where budget enforcement plugs in: admit before forwarding, settle after.

The gateway calls ``admit`` once a request is authenticated and parsed, before anything is
sent upstream; raising ``CallRefused`` refuses the call (HTTP 402, provider-shaped). It calls
``settle`` once the call is over with the ``CallFinished`` event it emitted. The default
implementation admits everything.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from services.common.events import CallFinished
from services.gateway.errors import ProviderName
from services.gateway.session_headers import SessionHeaders


@dataclass(frozen=True, slots=True)
class CallContext:
    call_id: str
    tenant: str
    provider: ProviderName
    endpoint: str
    model: str | None
    streamed: bool
    session: SessionHeaders
    iteration: int | None
    body: dict[str, Any] | None = field(repr=False, default=None)


@dataclass(frozen=True, slots=True)
class Admitted:
    reserved_usd: Decimal = Decimal(0)
    budget_usd: Decimal | None = None
    # Shown to the client as X-AgentWatch-Session-Spent-Usd / -Remaining-Usd when known.
    spent_usd: Decimal | None = None
    remaining_usd: Decimal | None = None


ADMIT_ALL = Admitted()


class Admission(Protocol):
    async def admit(self, call: CallContext) -> Admitted: ...

    async def settle(self, call: CallContext, finished: CallFinished) -> None: ...


class PassThroughAdmission:
    async def admit(self, call: CallContext) -> Admitted:
        return ADMIT_ALL if call.session.budget_usd is None else Admitted(budget_usd=call.session.budget_usd)

    async def settle(self, call: CallContext, finished: CallFinished) -> None:
        return None


class IterationCounter:
    """Assigns the next iteration index to calls that did not send one.

    Per gateway replica and bounded (least recently used sessions are forgotten): an
    approximation that a session-state replica (budgets) may replace through the same seam.
    """

    def __init__(self, max_sessions: int = 100_000) -> None:
        self._next: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._max = max_sessions

    def assign(self, tenant: str, session_id: str | None, given: int | None) -> int | None:
        if session_id is None:
            return given
        key = (tenant, session_id)
        nxt = self._next.pop(key, 0)
        value = given if given is not None else nxt
        self._next[key] = max(nxt, value + 1)
        if len(self._next) > self._max:
            self._next.popitem(last=False)
        return value
