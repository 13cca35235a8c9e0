"""The gateway's errors and their provider-shaped bodies.

Each error knows its HTTP status and how OpenAI and Anthropic would name it, so a client's
official SDK raises its usual exception type with a readable message.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Literal

import msgspec
from aiohttp import web

ProviderName = Literal["openai", "anthropic"]


class GatewayError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    openai_type: ClassVar[str] = "api_error"
    anthropic_type: ClassVar[str] = "api_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthenticationFailed(GatewayError):
    status = 401
    code = "invalid_api_key"
    openai_type = "invalid_request_error"
    anthropic_type = "authentication_error"


class InvalidSessionHeader(GatewayError):
    status = 400
    code = "invalid_session_header"
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"


class BodyTooLarge(GatewayError):
    status = 413
    code = "request_too_large"
    openai_type = "invalid_request_error"
    anthropic_type = "request_too_large"


class ProviderNotConfigured(GatewayError):
    status = 503
    code = "provider_not_configured"
    openai_type = "api_error"
    anthropic_type = "api_error"


class UpstreamUnreachable(GatewayError):
    status = 502
    code = "upstream_unreachable"
    openai_type = "api_error"
    anthropic_type = "api_error"


class UpstreamTimeout(GatewayError):
    status = 504
    code = "upstream_timeout"
    openai_type = "api_error"
    anthropic_type = "timeout_error"


class CallRefused(GatewayError):
    """Raised by an admission step (budgets) to refuse a call before it goes upstream."""

    status = 402
    openai_type = "insufficient_quota"
    anthropic_type = "budget_exceeded"

    def __init__(
        self,
        message: str,
        code: Literal["budget_exceeded", "session_paused"] = "budget_exceeded",
        *,
        spent_usd: Decimal | None = None,
        budget_usd: Decimal | None = None,
        remaining_usd: Decimal | None = None,
    ) -> None:
        super().__init__(message)
        self.refusal_code = code
        # The session's figures, so a client can tell how far over it is without another call.
        self.spent_usd = spent_usd
        self.budget_usd = budget_usd
        self.remaining_usd = remaining_usd

    def figures(self) -> dict[str, str]:
        out = {}
        for name in ("spent_usd", "budget_usd", "remaining_usd"):
            value = getattr(self, name)
            if value is not None:
                out[name] = str(value)
        return out

    def figure_headers(self) -> dict[str, str]:
        out = {}
        if self.spent_usd is not None:
            out["X-AgentWatch-Session-Spent-Usd"] = str(self.spent_usd)
        if self.remaining_usd is not None:
            out["X-AgentWatch-Session-Remaining-Usd"] = str(self.remaining_usd)
        return out


_encode = msgspec.json.encode


def error_body(provider: ProviderName, err: GatewayError) -> bytes:
    code: str = err.code
    etype: str = err.anthropic_type if provider == "anthropic" else err.openai_type
    extra: dict[str, str] = {}
    if isinstance(err, CallRefused):
        # A refusal adds the session's figures beside the provider's fields; SDKs ignore extra keys.
        code = etype = err.refusal_code
        extra = err.figures()
    if provider == "anthropic":
        return _encode({"type": "error", "error": {"type": etype, "message": err.message, **extra}})
    return _encode({"error": {"message": err.message, "type": etype, "code": code, "param": None, **extra}})


def error_response(provider: ProviderName, err: GatewayError, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=err.status, body=error_body(provider, err), content_type="application/json", headers=headers
    )
