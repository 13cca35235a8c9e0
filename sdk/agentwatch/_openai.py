"""``WatchedOpenAI`` and ``AsyncWatchedOpenAI``: the official clients, routed through AgentWatch.

They subclass ``openai.OpenAI`` / ``openai.AsyncOpenAI`` the way ``openai.lib.azure`` does:
the constructor picks the base URL and credentials, and only the SDK's documented hooks are
overridden; ``copy()`` / ``with_options()`` return the subclass with its AgentWatch settings.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import openai
from openai._models import FinalRequestOptions
from typing_extensions import Self, override

from ._config import AgentWatchConfig
from ._core import Watch, client_args, merged, watch_for
from ._errors import AgentBudgetExceeded, AgentSessionPaused


class OpenAIBudgetExceeded(AgentBudgetExceeded, openai.APIStatusError):
    """A 402 ``budget_exceeded`` from the gateway: both an ``AgentBudgetExceeded`` and the
    ``openai.APIStatusError`` code written for the plain SDK expects."""

    def __init__(self, refusal: AgentBudgetExceeded, response: Any, body: object) -> None:
        openai.APIStatusError.__init__(self, str(refusal), response=response, body=body)
        self.session_id = refusal.session_id
        self.spent_usd = refusal.spent_usd
        self.budget_usd = refusal.budget_usd


class OpenAISessionPaused(AgentSessionPaused, openai.APIStatusError):
    def __init__(self, refusal: AgentSessionPaused, response: Any, body: object) -> None:
        openai.APIStatusError.__init__(self, str(refusal), response=response, body=body)
        self.session_id = refusal.session_id


def _refusal_error(watch: Watch, response: Any, body: object) -> openai.APIStatusError | None:
    refusal = watch.refusal(response, body)
    if isinstance(refusal, AgentBudgetExceeded):
        return OpenAIBudgetExceeded(refusal, response, body)
    if isinstance(refusal, AgentSessionPaused):
        return OpenAISessionPaused(refusal, response, body)
    return None


class WatchedOpenAI(openai.OpenAI):
    """``openai.OpenAI`` whose calls go through the AgentWatch gateway with session headers.

    Every ``agentwatch_*`` argument falls back to its ``AGENTWATCH_*`` environment variable.
    """

    _aw: Watch

    def __init__(
        self,
        *,
        agentwatch_api_key: str | None = None,
        agentwatch_url: str | None = None,
        agentwatch_project: str | None = None,
        agentwatch_team: str | None = None,
        agentwatch_session_id: str | None = None,
        agentwatch_session_budget_usd: float | str | Decimal | None = None,
        agentwatch_enforcement_mode: bool | None = None,
        agentwatch_fail_closed: bool | None = None,
        agentwatch_check_timeout_s: float | None = None,
        agentwatch_direct_mode: bool | None = None,
        agentwatch_direct_fallback: bool | None = None,
        agentwatch_provider_api_key: str | None = None,
        base_url: str | httpx.URL | None = None,
        _agentwatch: Watch | None = None,
        **kwargs: Any,
    ) -> None:
        watch = watch_for(
            "openai",
            _agentwatch,
            api_key=agentwatch_api_key,
            url=agentwatch_url,
            project=agentwatch_project,
            team=agentwatch_team,
            session_id=agentwatch_session_id,
            session_budget_usd=agentwatch_session_budget_usd,
            enforcement_mode=agentwatch_enforcement_mode,
            fail_closed=agentwatch_fail_closed,
            check_timeout_s=agentwatch_check_timeout_s,
            direct_mode=agentwatch_direct_mode,
            direct_fallback=agentwatch_direct_fallback,
            provider_api_key=agentwatch_provider_api_key,
        )
        kwargs.pop("api_key", None)
        api_key, url = client_args(watch, base_url)
        super().__init__(api_key=api_key, base_url=url, **kwargs)
        self._aw = watch

    @property
    def agentwatch(self) -> AgentWatchConfig:
        """The AgentWatch settings this client uses."""
        return self._aw.config

    @override
    def _prepare_options(self, options: FinalRequestOptions) -> FinalRequestOptions:
        options = super()._prepare_options(options)
        call, first = self._aw.begin(options)
        self._aw.prepare(options, call, first)
        return options

    @override
    def _make_status_error_from_response(self, response: Any) -> openai.APIStatusError:
        error = super()._make_status_error_from_response(response)
        return _refusal_error(self._aw, response, error.body) or error

    @override
    def _process_response(self, *args: Any, **kwargs: Any) -> Any:
        result = super()._process_response(*args, **kwargs)
        return self._aw.observe(kwargs["options"], result, kwargs["response"].status_code)

    @override
    def copy(
        self,
        *args: Any,
        agentwatch_session_id: str | None = None,
        agentwatch_session_budget_usd: float | str | Decimal | None = None,
        agentwatch_project: str | None = None,
        agentwatch_team: str | None = None,
        agentwatch_enforcement_mode: bool | None = None,
        **kwargs: Any,
    ) -> Self:
        extra = dict(kwargs.pop("_extra_kwargs", None) or {})
        extra["_agentwatch"] = merged(
            self._aw,
            {
                "session_id": agentwatch_session_id,
                "session_budget_usd": agentwatch_session_budget_usd,
                "project": agentwatch_project,
                "team": agentwatch_team,
                "enforcement_mode": agentwatch_enforcement_mode,
            },
        )
        return super().copy(*args, _extra_kwargs=extra, **kwargs)

    with_options = copy


class AsyncWatchedOpenAI(openai.AsyncOpenAI):
    """``openai.AsyncOpenAI`` whose calls go through the AgentWatch gateway with session headers."""

    _aw: Watch

    def __init__(
        self,
        *,
        agentwatch_api_key: str | None = None,
        agentwatch_url: str | None = None,
        agentwatch_project: str | None = None,
        agentwatch_team: str | None = None,
        agentwatch_session_id: str | None = None,
        agentwatch_session_budget_usd: float | str | Decimal | None = None,
        agentwatch_enforcement_mode: bool | None = None,
        agentwatch_fail_closed: bool | None = None,
        agentwatch_check_timeout_s: float | None = None,
        agentwatch_direct_mode: bool | None = None,
        agentwatch_direct_fallback: bool | None = None,
        agentwatch_provider_api_key: str | None = None,
        base_url: str | httpx.URL | None = None,
        _agentwatch: Watch | None = None,
        **kwargs: Any,
    ) -> None:
        watch = watch_for(
            "openai",
            _agentwatch,
            api_key=agentwatch_api_key,
            url=agentwatch_url,
            project=agentwatch_project,
            team=agentwatch_team,
            session_id=agentwatch_session_id,
            session_budget_usd=agentwatch_session_budget_usd,
            enforcement_mode=agentwatch_enforcement_mode,
            fail_closed=agentwatch_fail_closed,
            check_timeout_s=agentwatch_check_timeout_s,
            direct_mode=agentwatch_direct_mode,
            direct_fallback=agentwatch_direct_fallback,
            provider_api_key=agentwatch_provider_api_key,
        )
        kwargs.pop("api_key", None)
        api_key, url = client_args(watch, base_url)
        super().__init__(api_key=api_key, base_url=url, **kwargs)
        self._aw = watch

    @property
    def agentwatch(self) -> AgentWatchConfig:
        return self._aw.config

    @override
    async def _prepare_options(self, options: FinalRequestOptions) -> FinalRequestOptions:
        options = await super()._prepare_options(options)
        call, first = self._aw.begin(options)
        await self._aw.aprepare(options, call, first)
        return options

    @override
    def _make_status_error_from_response(self, response: Any) -> openai.APIStatusError:
        error = super()._make_status_error_from_response(response)
        return _refusal_error(self._aw, response, error.body) or error

    @override
    async def _process_response(self, *args: Any, **kwargs: Any) -> Any:
        result = await super()._process_response(*args, **kwargs)
        return self._aw.observe(kwargs["options"], result, kwargs["response"].status_code)

    @override
    def copy(
        self,
        *args: Any,
        agentwatch_session_id: str | None = None,
        agentwatch_session_budget_usd: float | str | Decimal | None = None,
        agentwatch_project: str | None = None,
        agentwatch_team: str | None = None,
        agentwatch_enforcement_mode: bool | None = None,
        **kwargs: Any,
    ) -> Self:
        extra = dict(kwargs.pop("_extra_kwargs", None) or {})
        extra["_agentwatch"] = merged(
            self._aw,
            {
                "session_id": agentwatch_session_id,
                "session_budget_usd": agentwatch_session_budget_usd,
                "project": agentwatch_project,
                "team": agentwatch_team,
                "enforcement_mode": agentwatch_enforcement_mode,
            },
        )
        return super().copy(*args, _extra_kwargs=extra, **kwargs)

    with_options = copy
