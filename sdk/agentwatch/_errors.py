"""The SDK's exceptions: a small hierarchy rooted at ``AgentWatchError``."""

from __future__ import annotations

from decimal import Decimal


class AgentWatchError(Exception):
    """Base of every error the AgentWatch SDK raises itself."""


class AgentWatchConfigError(AgentWatchError):
    """The client was built without what it needs (token, gateway URL, provider key)."""


class AgentBudgetExceeded(AgentWatchError):
    """The session's USD budget does not allow this call; nothing was sent to the provider.

    Raised by the pre-flight check, or when the gateway refuses the call with HTTP 402
    ``budget_exceeded``. ``spent_usd`` and ``budget_usd`` are what the gateway reported
    (``None`` when it did not say).
    """

    def __init__(
        self,
        message: str,
        *,
        session_id: str | None,
        spent_usd: Decimal | None,
        budget_usd: Decimal | None,
    ) -> None:
        super().__init__(message)
        self.session_id = session_id
        self.spent_usd = spent_usd
        self.budget_usd = budget_usd


class AgentSessionPaused(AgentWatchError):
    """The session is paused (by an operator or the loop detector) until resumed."""

    def __init__(self, message: str, *, session_id: str | None) -> None:
        super().__init__(message)
        self.session_id = session_id


class GatewayUnavailable(AgentWatchError):
    """The gateway could not be reached and the client is configured to fail closed."""
