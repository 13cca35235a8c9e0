"""The one implementation behind the four watched clients (sync or async, OpenAI or Anthropic).

Like ``openai.lib.azure``, each watched client subclasses the official one and overrides only
the SDKs' documented hooks. The overrides live here, in mixins listed before the official
class so that they come first in its MRO and reach the official hook through ``super()``:

- ``WatchedClient``: the constructor, ``agentwatch``, ``copy`` / ``with_options`` and the
  402 mapping, for all four; a client names its provider and its provider-shaped errors;
- ``SyncWatched`` / ``AsyncWatched``: ``_prepare_options`` and ``_process_response``, which
  are coroutines on the async clients.

The mixins' own bases are not the official clients (OpenAI's and Anthropic's share no base),
so their ``super()`` calls go through ``_Official*`` protocols of the hooks they reach.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar, Generic, Protocol, TypeVar, Union, cast

import httpx
from typing_extensions import Self

from ._config import AgentWatchConfig, Provider
from ._core import RequestOptions, Watch, client_args, new_watch
from ._errors import AgentBudgetExceeded, AgentSessionPaused

# The official SDK's ``APIStatusError`` (openai's or anthropic's).
_StatusT = TypeVar("_StatusT", bound=Exception)
_StatusT_co = TypeVar("_StatusT_co", bound=Exception, covariant=True)
# The official SDK's ``FinalRequestOptions``.
_OptionsT = TypeVar("_OptionsT", bound=RequestOptions)

Refusal = Union[AgentBudgetExceeded, AgentSessionPaused]


class _Official(Protocol[_StatusT_co]):
    """The official client's hooks ``WatchedClient`` extends."""

    def _make_status_error_from_response(self, response: Any) -> _StatusT_co: ...

    def copy(self, *args: Any, _extra_kwargs: dict[str, Any], **kwargs: Any) -> Any: ...


class _OfficialSync(Protocol):
    def _prepare_options(self, options: _OptionsT) -> _OptionsT: ...

    def _process_response(self, *args: Any, **kwargs: Any) -> Any: ...


class _OfficialAsync(Protocol):
    async def _prepare_options(self, options: _OptionsT) -> _OptionsT: ...

    async def _process_response(self, *args: Any, **kwargs: Any) -> Any: ...


class ProviderRefusal:
    """Mixin of the 402 errors that are both an AgentWatch refusal and the provider SDK's
    ``APIStatusError`` (``class OpenAIBudgetExceeded(ProviderRefusal, AgentBudgetExceeded,
    openai.APIStatusError)``), so code written for the plain SDK keeps catching them."""

    # The provider's APIStatusError, whose __init__ this one runs.
    status_error: ClassVar[type[Any]]

    def __init__(self, refusal: Refusal, response: Any, body: object) -> None:
        # The two halves' __init__s take different arguments and neither calls the other's, so
        # the provider half is initialised here and the AgentWatch half (session id, figures)
        # is copied from the refusal ``Watch.refusal`` built.
        self.status_error.__init__(self, str(refusal), response=response, body=body)
        vars(self).update(vars(refusal))


class WatchedClient(Generic[_StatusT]):
    """What every watched client adds to the official one; ``_StatusT`` is its SDK's ``APIStatusError``.

    Every ``agentwatch_*`` argument falls back to its ``AGENTWATCH_*`` environment variable.
    """

    _agentwatch_provider: ClassVar[Provider]
    # The provider-shaped errors for a 402 budget_exceeded and a 402 session_paused.
    _agentwatch_budget_exceeded: type[_StatusT]
    _agentwatch_session_paused: type[_StatusT]
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
        watch = _agentwatch
        if watch is None:  # a new client; a copy() gets the original's watch and reads nothing
            watch = new_watch(
                self._agentwatch_provider,
                AgentWatchConfig.resolve(
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
                ),
            )
        # The official client sends the AgentWatch token (in direct mode, the provider key),
        # whatever ``api_key`` the caller, or ``copy()`` from the original, passed.
        kwargs["api_key"], kwargs["base_url"] = client_args(watch, base_url)
        super().__init__(**kwargs)
        self._aw = watch

    @property
    def agentwatch(self) -> AgentWatchConfig:
        """The AgentWatch settings this client uses."""
        return self._aw.config

    def _make_status_error_from_response(self, response: Any) -> _StatusT:
        error = cast("_Official[_StatusT]", super())._make_status_error_from_response(response)
        body = getattr(error, "body", None)
        refusal = self._aw.refusal(response, body)
        if isinstance(refusal, AgentBudgetExceeded):
            return self._agentwatch_budget_exceeded(refusal, response, body)
        if isinstance(refusal, AgentSessionPaused):
            return self._agentwatch_session_paused(refusal, response, body)
        return error

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
        # The official copy() builds the new client with ``self.__class__(..., **_extra_kwargs)``:
        # the watch rides along there, so the copy keeps the settings and the iteration counter.
        extra = dict(kwargs.pop("_extra_kwargs", None) or {})
        extra["_agentwatch"] = self._aw.derived(
            self._aw.config.merged(
                session_id=agentwatch_session_id,
                session_budget_usd=agentwatch_session_budget_usd,
                project=agentwatch_project,
                team=agentwatch_team,
                enforcement_mode=agentwatch_enforcement_mode,
            )
        )
        copied: Self = cast("_Official[_StatusT]", super()).copy(*args, _extra_kwargs=extra, **kwargs)
        return copied

    with_options = copy


class SyncWatched(WatchedClient[_StatusT]):
    """The hooks of the sync clients (``openai.OpenAI``, ``anthropic.Anthropic``)."""

    def _prepare_options(self, options: _OptionsT) -> _OptionsT:
        options = cast(_OfficialSync, super())._prepare_options(options)
        call, first = self._aw.begin(options)
        self._aw.prepare(options, call, first)
        return options

    def _process_response(self, *args: Any, **kwargs: Any) -> Any:
        result = cast(_OfficialSync, super())._process_response(*args, **kwargs)
        return self._aw.observe(kwargs["options"], result, kwargs["response"].status_code)


class AsyncWatched(WatchedClient[_StatusT]):
    """The hooks of the async clients (``openai.AsyncOpenAI``, ``anthropic.AsyncAnthropic``)."""

    async def _prepare_options(self, options: _OptionsT) -> _OptionsT:
        options = await cast(_OfficialAsync, super())._prepare_options(options)
        call, first = self._aw.begin(options)
        await self._aw.aprepare(options, call, first)
        return options

    async def _process_response(self, *args: Any, **kwargs: Any) -> Any:
        result = await cast(_OfficialAsync, super())._process_response(*args, **kwargs)
        return self._aw.observe(kwargs["options"], result, kwargs["response"].status_code)
