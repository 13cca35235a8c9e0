"""Validation of the X-AgentWatch-* request headers."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from multidict import CIMultiDictProxy

from services.gateway.errors import InvalidSessionHeader

SESSION_ID = "X-AgentWatch-Session-Id"
ITERATION = "X-AgentWatch-Iteration"
BUDGET = "X-AgentWatch-Session-Budget-Usd"
PROJECT = "X-AgentWatch-Project"
TEAM = "X-AgentWatch-Team"
MAX_LEN = 128
MAX_ITERATION = 10**9


@dataclass(frozen=True, slots=True)
class SessionHeaders:
    session_id: str | None = None
    iteration: int | None = None
    budget_usd: Decimal | None = None
    project: str | None = None
    team: str | None = None


NO_SESSION = SessionHeaders()


def _printable(value: str) -> bool:
    return value.isascii() and value.isprintable()


def _label(headers: CIMultiDictProxy[str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    if not value or len(value) > MAX_LEN or not _printable(value):
        raise InvalidSessionHeader(f"{name} must be 1-{MAX_LEN} printable ASCII characters")
    return value


def parse_session_headers(headers: CIMultiDictProxy[str]) -> SessionHeaders:
    session_id = _label(headers, SESSION_ID)
    project = _label(headers, PROJECT)
    team = _label(headers, TEAM)
    iteration: int | None = None
    raw_iter = headers.get(ITERATION)
    if raw_iter is not None:
        if not raw_iter.isdigit() or not raw_iter.isascii() or int(raw_iter) > MAX_ITERATION:
            raise InvalidSessionHeader(f"{ITERATION} must be a non-negative integer")
        iteration = int(raw_iter)
    budget: Decimal | None = None
    raw_budget = headers.get(BUDGET)
    if raw_budget is not None:
        try:
            budget = Decimal(raw_budget.strip())
        except InvalidOperation:
            budget = None
        if budget is None or not budget.is_finite() or budget <= 0:
            raise InvalidSessionHeader(f"{BUDGET} must be a positive decimal number of USD")
    if session_id is None and project is None and team is None and iteration is None and budget is None:
        return NO_SESSION
    return SessionHeaders(session_id, iteration, budget, project, team)
