"""Client settings: explicit arguments first, then ``AGENTWATCH_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from ._errors import AgentWatchConfigError

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_CHECK_TIMEOUT_S = 0.5

Provider = Literal["openai", "anthropic"]
_TRUE = {"1", "true", "yes", "on"}


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    return default if raw is None or raw == "" else raw.strip().lower() in _TRUE


def _decimal(value: Any, what: str) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        d = Decimal(str(value))
    except InvalidOperation as exc:
        raise AgentWatchConfigError(f"{what} must be a decimal number, got {value!r}") from exc
    if not d.is_finite() or d <= 0:
        raise AgentWatchConfigError(f"{what} must be a positive number, got {value!r}")
    return d


@dataclass(frozen=True)
class AgentWatchConfig:
    """Everything a watched client needs besides the official client's own options."""

    api_key: str | None
    url: str
    project: str | None = None
    team: str | None = None
    session_id: str | None = None
    session_budget_usd: Decimal | None = None
    enforcement_mode: bool = False
    fail_closed: bool = False
    check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S
    direct_mode: bool = False
    direct_fallback: bool = False
    provider_api_key: str | None = None
    provider_base_url: str | None = None

    @classmethod
    def resolve(
        cls,
        *,
        api_key: str | None = None,
        url: str | None = None,
        project: str | None = None,
        team: str | None = None,
        session_id: str | None = None,
        session_budget_usd: float | str | Decimal | None = None,
        enforcement_mode: bool | None = None,
        fail_closed: bool | None = None,
        check_timeout_s: float | None = None,
        direct_mode: bool | None = None,
        direct_fallback: bool | None = None,
        provider_api_key: str | None = None,
        provider_base_url: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> AgentWatchConfig:
        env = os.environ if environ is None else environ
        timeout = check_timeout_s if check_timeout_s is not None else env.get("AGENTWATCH_CHECK_TIMEOUT_S")
        return cls(
            api_key=api_key or env.get("AGENTWATCH_API_KEY") or None,
            url=(url or env.get("AGENTWATCH_URL") or DEFAULT_URL).rstrip("/"),
            project=project or env.get("AGENTWATCH_PROJECT") or None,
            team=team or env.get("AGENTWATCH_TEAM") or None,
            session_id=session_id or env.get("AGENTWATCH_SESSION_ID") or None,
            session_budget_usd=_decimal(
                session_budget_usd if session_budget_usd is not None else env.get("AGENTWATCH_SESSION_BUDGET_USD"),
                "agentwatch_session_budget_usd",
            ),
            enforcement_mode=enforcement_mode
            if enforcement_mode is not None
            else _env_bool(env, "AGENTWATCH_ENFORCEMENT_MODE", False),
            fail_closed=fail_closed if fail_closed is not None else _env_bool(env, "AGENTWATCH_FAIL_CLOSED", False),
            check_timeout_s=float(timeout) if timeout is not None else DEFAULT_CHECK_TIMEOUT_S,
            direct_mode=direct_mode if direct_mode is not None else _env_bool(env, "AGENTWATCH_DIRECT_MODE", False),
            direct_fallback=direct_fallback
            if direct_fallback is not None
            else _env_bool(env, "AGENTWATCH_DIRECT_FALLBACK", False),
            provider_api_key=provider_api_key,
            provider_base_url=provider_base_url,
        )

    def with_provider(self, provider: Provider, environ: Mapping[str, str] | None = None) -> AgentWatchConfig:
        """Fill the provider key/URL used by direct mode and the direct fallback."""
        env = os.environ if environ is None else environ
        key_var = "OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY"
        url_var = "OPENAI_BASE_URL" if provider == "openai" else "ANTHROPIC_BASE_URL"
        default_url = "https://api.openai.com/v1" if provider == "openai" else "https://api.anthropic.com"
        return replace(
            self,
            provider_api_key=self.provider_api_key or env.get(key_var) or None,
            provider_base_url=(self.provider_base_url or env.get(url_var) or default_url).rstrip("/"),
        )

    def proxy_base_url(self, provider: Provider) -> str:
        return f"{self.url}/v1/proxy/{provider}"

    def merged(self, **changes: Any) -> AgentWatchConfig:
        """A copy with the given fields changed; ``None`` values leave a field as it is."""
        clean = {k: v for k, v in changes.items() if v is not None}
        if "session_budget_usd" in clean:
            clean["session_budget_usd"] = _decimal(clean["session_budget_usd"], "agentwatch_session_budget_usd")
        if "url" in clean:
            clean["url"] = str(clean["url"]).rstrip("/")
        return replace(self, **clean)
