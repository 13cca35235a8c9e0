"""The inline secret guard at the admission seam: a tenant whose policy sets ``secret_guard``
gets a provider-shaped 400 for a request carrying a secret, before budgets are touched and
before anything goes upstream. Tenants without it pay one dictionary lookup per call.
"""

from __future__ import annotations

from services.anomaly.risk.guard import SecretGuard
from services.common.config import CommonSettings
from services.common.events import CallFinished
from services.gateway.admission import Admission, Admitted, CallContext
from services.gateway.errors import GatewayError


class SecretInRequest(GatewayError):
    status = 400
    code = "secret_detected"
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"


class SecretGuardAdmission:
    """Wraps the admission in force (budgets), refusing first."""

    def __init__(self, inner: Admission, settings: CommonSettings, guard: SecretGuard | None = None) -> None:
        self._inner = inner
        self._settings = settings
        self._guard = guard or SecretGuard()

    async def admit(self, call: CallContext) -> Admitted:
        policy = self._settings.policy(call.tenant)
        if policy.secret_guard and call.body is not None:
            refusal = self._guard.check(call.body, policy, call.provider)
            if refusal is not None:
                raise SecretInRequest(refusal.message)
        return await self._inner.admit(call)

    async def settle(self, call: CallContext, finished: CallFinished) -> None:
        await self._inner.settle(call, finished)
