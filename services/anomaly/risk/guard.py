"""Inline secret guard: lets the gateway refuse, before anything goes upstream, a request that
carries a secret. Off unless the tenant's policy sets ``secret_guard``; the gateway calls
``SecretGuard.check`` on the parsed request body at admission.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from services.anomaly.risk.payload import scan_body
from services.anomaly.risk.scanner import Scanner
from services.anomaly.risk.types import SECRET_TYPES
from services.common.config import TenantPolicy
from services.common.events import Provider

ERROR_CODE = "secret_detected"


@dataclass(frozen=True, slots=True)
class GuardRefusal:
    """A provider-shaped 400: the types found, never the values."""

    status: int
    body: dict[str, Any]
    types: tuple[str, ...]
    message: str


class SecretGuard:
    def __init__(self) -> None:
        # Secrets only: the guard sits on the hot path, and PII is not a reason to refuse a call.
        self._scanner = Scanner(SECRET_TYPES)

    def check(self, body: Any, policy: TenantPolicy, provider: Provider) -> GuardRefusal | None:
        if not policy.secret_guard:
            return None
        found = self._found(body)
        if not found:
            return None
        message = (
            f"request refused by AgentWatch: it contains a secret ({', '.join(found)}); "
            "remove it from the prompt (and rotate it if it was real)"
        )
        if provider == "anthropic":
            payload: dict[str, Any] = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
        else:
            payload = {"error": {"message": message, "type": "invalid_request_error", "code": ERROR_CODE}}
        return GuardRefusal(400, payload, found, message)

    def _found(self, body: Any) -> tuple[str, ...]:
        text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
        scan = scan_body(self._scanner, text, "request", frozenset())
        return tuple(sorted({f.match.finding_type for f in scan.findings}))
