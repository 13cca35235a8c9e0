"""The gateway's errors and their provider-shaped bodies.

Each error knows its HTTP status and how OpenAI and Anthropic would name it, so a client's
official SDK raises its usual exception type with a readable message.
"""

from __future__ import annotations

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

    def __init__(self, message: str, code: Literal["budget_exceeded", "session_paused"] = "budget_exceeded") -> None:
        super().__init__(message)
        self.refusal_code = code


_encode = msgspec.json.encode


def error_body(provider: ProviderName, err: GatewayError) -> bytes:
    code = err.refusal_code if isinstance(err, CallRefused) else err.code
    if provider == "anthropic":
        etype = code if isinstance(err, CallRefused) else err.anthropic_type
        return _encode({"type": "error", "error": {"type": etype, "message": err.message}})
    etype = code if isinstance(err, CallRefused) else err.openai_type
    return _encode({"error": {"message": err.message, "type": etype, "code": code, "param": None}})


def error_response(provider: ProviderName, err: GatewayError, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=err.status, body=error_body(provider, err), content_type="application/json", headers=headers
    )
