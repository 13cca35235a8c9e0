"""Sessions: one id, budget and iteration counter shared by every client that runs under it."""

from __future__ import annotations

import threading
import uuid
from contextvars import ContextVar, Token
from decimal import Decimal
from types import TracebackType


class IterationCounter:
    """Hands out 0, 1, 2, … once each, safely across threads and asyncio tasks."""

    __slots__ = ("_lock", "_next")

    def __init__(self, start: int = 0) -> None:
        self._lock = threading.Lock()
        self._next = start

    def next(self) -> int:
        with self._lock:
            value = self._next
            self._next += 1
            return value

    def peek(self) -> int:
        return self._next


class AgentSession:
    """Runs several clients under one AgentWatch session.

    ``with agentwatch_session("ci-run-123", budget_usd=2) as s:`` — every watched client used
    inside the block (any thread started inside it, any task created inside it) sends this
    session's id, budget, project and team, and draws iteration numbers from one counter.
    """

    def __init__(
        self,
        session_id: str | None = None,
        *,
        budget_usd: float | str | Decimal | None = None,
        project: str | None = None,
        team: str | None = None,
        start_iteration: int = 0,
    ) -> None:
        self.session_id = session_id or f"session-{uuid.uuid4().hex}"
        self.budget_usd = None if budget_usd is None else Decimal(str(budget_usd))
        self.project = project
        self.team = team
        self.counter = IterationCounter(start_iteration)
        self._tokens: list[Token[AgentSession | None]] = []

    def __enter__(self) -> AgentSession:
        self._tokens.append(_current.set(self))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _current.reset(self._tokens.pop())

    async def __aenter__(self) -> AgentSession:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)


_current: ContextVar[AgentSession | None] = ContextVar("agentwatch_session", default=None)


def agentwatch_session(
    session_id: str | None = None,
    *,
    budget_usd: float | str | Decimal | None = None,
    project: str | None = None,
    team: str | None = None,
    start_iteration: int = 0,
) -> AgentSession:
    """Create a session to use as a (async) context manager."""
    return AgentSession(session_id, budget_usd=budget_usd, project=project, team=team, start_iteration=start_iteration)


def current_session() -> AgentSession | None:
    return _current.get()
