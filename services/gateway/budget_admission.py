"""Budget enforcement plugged into the gateway's admission seam (fast or strict per tenant)."""

from __future__ import annotations

from decimal import Decimal

from services.common.config import CommonSettings
from services.common.events import CallFinished, ReservationRequest, session_key
from services.gateway.admission import ADMIT_ALL, Admitted, CallContext
from services.gateway.budget import BudgetLedger, Refusal, Reservation, SessionView
from services.gateway.errors import CallRefused
from services.gateway.estimate import worst_case
from services.gateway.strict import StrictReservations


class BudgetStateUnknown(CallRefused):
    """Fail-closed tenants when session state is unknown: retryable, so 503 rather than 402."""

    status = 503
    code = "budget_state_unknown"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.refusal_code = "budget_state_unknown"  # type: ignore[assignment]


def _refuse(refusal: Refusal) -> CallRefused:
    if refusal.code == "budget_state_unknown":
        return BudgetStateUnknown(refusal.message)
    view = refusal.view
    return CallRefused(
        refusal.message,
        refusal.code,
        spent_usd=view.spent_usd,
        budget_usd=view.budget_usd,
        remaining_usd=view.remaining_usd,
    )


class BudgetAdmission:
    def __init__(
        self,
        settings: CommonSettings,
        ledger: BudgetLedger,
        strict: StrictReservations | None,
        gateway_id: str,
        *,
        strict_timeout_s: float = 5.0,
        fast_wait_s: float = 1.0,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._strict = strict
        self._gateway_id = gateway_id
        self._strict_timeout_s = strict_timeout_s
        self._fast_wait_s = fast_wait_s
        self._reservations: dict[str, Reservation] = {}

    async def admit(self, call: CallContext) -> Admitted:
        session_id = call.session.session_id
        if session_id is None:
            return ADMIT_ALL
        policy = self._settings.policy(call.tenant)
        estimate = worst_case(call.provider, call.body or {})
        # An unpriced model reserves nothing: it cannot be priced before or after the call.
        amount = estimate.cost_usd if estimate.cost_usd is not None else Decimal(0)
        if policy.budget_mode == "strict" and self._strict is not None:
            reservation = await self._strict_admit(call, session_id, amount, policy.on_unknown_state == "closed")
        else:
            result = await self._ledger.admit_within(
                tenant=call.tenant,
                session_id=session_id,
                call_id=call.call_id,
                amount_usd=amount,
                requested_budget_usd=call.session.budget_usd,
                policy=policy,
                wait_s=self._fast_wait_s,
            )
            if isinstance(result, Refusal):
                raise _refuse(result)
            reservation = result
        self._reservations[call.call_id] = reservation
        view = self._ledger.view(call.tenant, session_id, policy)
        return Admitted(
            reserved_usd=reservation.amount_usd,
            budget_usd=reservation.budget_usd,
            spent_usd=view.spent_usd,
            remaining_usd=view.remaining_usd,
        )

    async def _strict_admit(
        self, call: CallContext, session_id: str, amount: Decimal, fail_closed: bool
    ) -> Reservation:
        assert self._strict is not None
        policy = self._settings.policy(call.tenant)
        view = self._ledger.view(call.tenant, session_id, policy)
        requested = call.session.budget_usd
        budget = requested if requested is not None else (view.budget_usd or policy.default_budget_usd)
        request = ReservationRequest(
            tenant=call.tenant,
            session_id=session_id,
            call_id=call.call_id,
            amount_usd=amount,
            budget_usd=budget,
            gateway_id=self._gateway_id,
        )
        decision = await self._strict.reserve(request, self._strict_timeout_s)
        if decision is None:
            stats = self._ledger.stats
            if fail_closed:
                stats.unknown_closed += 1
                raise BudgetStateUnknown("session budget state is unavailable; retry later")
            stats.unknown_open += 1
            reservation = Reservation(session_key(call.tenant, session_id), call.call_id, amount, budget)
        elif decision.code in ("budget_exceeded", "session_paused"):
            raise CallRefused(
                f"session budget ${decision.budget_usd} would be exceeded: spent ${decision.spent_usd}, "
                f"in flight ${decision.reserved_usd}, this call up to ${amount}"
                if decision.code == "budget_exceeded"
                else "session is paused",
                "budget_exceeded" if decision.code == "budget_exceeded" else "session_paused",
            )
        elif decision.code == "already_finished":
            raise BudgetStateUnknown("this call id was already settled")
        else:
            reservation = Reservation(session_key(call.tenant, session_id), call.call_id, amount, decision.budget_usd)
        self._ledger.track(reservation)
        return reservation

    async def settle(self, call: CallContext, finished: CallFinished) -> None:
        reservation = self._reservations.pop(call.call_id, None)
        if reservation is None:
            return
        cost = Decimal(0) if finished.outcome == "refused" else finished.cost_usd
        self._ledger.settle(reservation, cost)

    def view(self, tenant: str, session_id: str) -> SessionView:
        return self._ledger.view(tenant, session_id, self._settings.policy(tenant))
