"""The pre-flight budget check against the gateway's ``GET /v1/budget-check``."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from ._errors import AgentBudgetExceeded, AgentSessionPaused, GatewayUnavailable

log = logging.getLogger("agentwatch")


@dataclass(frozen=True)
class BudgetStatus:
    session_id: str
    allowed: bool
    blocked: bool
    paused: bool
    spent_usd: Decimal | None
    budget_usd: Decimal | None
    remaining_usd: Decimal | None


def _dec(value: Any) -> Decimal | None:
    if value is None:
        return None
    # A garbled figure must take the fail-open path (ValueError), not escape as InvalidOperation.
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"budget-check figure is not a number: {value!r}")
    try:
        out = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"budget-check figure is not a number: {value!r}") from exc
    if not out.is_finite():
        raise ValueError(f"budget-check figure is not finite: {value!r}")
    return out


def parse_status(session_id: str, body: Any) -> BudgetStatus:
    if not isinstance(body, dict):
        raise ValueError("budget-check answer is not a JSON object")
    return BudgetStatus(
        session_id=str(body.get("session_id", session_id)),
        allowed=bool(body.get("allowed", True)),
        blocked=bool(body.get("blocked", False)),
        # `blocked` is true for an exhausted budget too; only `paused` says why.
        paused=bool(body.get("paused", False)),
        spent_usd=_dec(body.get("spent_usd")),
        budget_usd=_dec(body.get("budget_usd")),
        remaining_usd=_dec(body.get("remaining_usd")),
    )


def raise_if_refused(status: BudgetStatus) -> None:
    if status.paused:
        raise AgentSessionPaused(f"AgentWatch session {status.session_id} is paused", session_id=status.session_id)
    if not status.allowed or status.blocked:
        raise AgentBudgetExceeded(
            f"AgentWatch session {status.session_id} has spent ${status.spent_usd} of its ${status.budget_usd} budget",
            session_id=status.session_id,
            spent_usd=status.spent_usd,
            budget_usd=status.budget_usd,
        )


class BudgetChecker:
    """Asks the gateway whether a session may make another call.

    When the gateway cannot answer (down, slow, garbled), the check fails open by default —
    the call is attempted and the gateway, if it is up after all, still enforces — with one
    warning per checker; ``fail_closed`` turns that into ``GatewayUnavailable``.
    """

    def __init__(self, url: str, token: str | None, *, timeout_s: float, fail_closed: bool) -> None:
        self._url = f"{url}/v1/budget-check"
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = httpx.Timeout(timeout_s)
        self._fail_closed = fail_closed
        self._warned = threading.Event()
        self._sync: httpx.Client | None = None
        self._async: httpx.AsyncClient | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def _unavailable(self, exc: Exception) -> None:
        if self._fail_closed:
            raise GatewayUnavailable(f"AgentWatch budget check failed: {exc}") from exc
        if not self._warned.is_set():
            self._warned.set()
            log.warning("AgentWatch budget check unavailable (%s); failing open", type(exc).__name__)

    def _sync_client(self) -> httpx.Client:
        with self._lock:
            if self._sync is None:
                self._sync = httpx.Client(timeout=self._timeout, headers=self._headers)
            return self._sync

    def _answer(self, session_id: str, resp: httpx.Response) -> BudgetStatus:
        resp.raise_for_status()
        status = parse_status(session_id, resp.json())
        raise_if_refused(status)
        return status

    def check(self, session_id: str) -> BudgetStatus | None:
        """The session's status, or ``None`` when the gateway could not answer (fail-open)."""
        try:
            resp = self._sync_client().get(self._url, params={"session_id": session_id})
            return self._answer(session_id, resp)
        except (httpx.HTTPError, ValueError) as exc:
            self._unavailable(exc)
            return None

    async def acheck(self, session_id: str) -> BudgetStatus | None:
        loop = asyncio.get_running_loop()
        if self._async is None or self._async_loop is not loop:
            # An httpx.AsyncClient belongs to the loop it first ran on.
            self._async = httpx.AsyncClient(timeout=self._timeout, headers=self._headers)
            self._async_loop = loop
        try:
            resp = await self._async.get(self._url, params={"session_id": session_id})
            return self._answer(session_id, resp)
        except (httpx.HTTPError, ValueError) as exc:
            self._unavailable(exc)
            return None

    def reachable(self) -> bool:
        """A quick liveness probe (``/healthz``) for the direct fallback."""
        try:
            return self._sync_client().get(self._url.replace("/v1/budget-check", "/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def areachable(self) -> bool:
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                resp = await client.get(self._url.replace("/v1/budget-check", "/healthz"))
                return resp.status_code == 200
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
