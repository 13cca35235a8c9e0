"""What every watched client shares: headers, iteration numbers, pre-flight, 402 mapping,
the direct fallback and direct-mode usage reporting.

Each watched client holds one ``Watch``; the client mixins in ``_client`` only override the
official SDKs' documented hooks (``_prepare_options``, ``_make_status_error_from_response``,
``_process_response``, ``copy``) and delegate here.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Protocol

from ._checks import BudgetChecker
from ._config import AgentWatchConfig, Provider
from ._errors import AgentBudgetExceeded, AgentSessionPaused, AgentWatchConfigError
from ._ingest import UsageReporter
from ._session import IterationCounter, current_session
from ._usage import Usage, absorb_item

H_SESSION = "X-AgentWatch-Session-Id"
H_ITERATION = "X-AgentWatch-Iteration"
H_BUDGET = "X-AgentWatch-Session-Budget-Usd"
H_PROJECT = "X-AgentWatch-Project"
H_TEAM = "X-AgentWatch-Team"
H_SPENT = "X-AgentWatch-Session-Spent-Usd"
H_REMAINING = "X-AgentWatch-Session-Remaining-Usd"

_REMEMBERED_CALLS = 1024


class RequestOptions(Protocol):
    """The part of the official SDKs' ``FinalRequestOptions`` this module touches."""

    method: str
    url: str
    headers: Any
    json_data: Any
    idempotency_key: str | None


class _Response(Protocol):
    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Any: ...


def _header(headers: Any, name: str) -> Any:
    if not headers:
        return None
    low = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == low:
            return value
    return None


def _dec(value: Any) -> Decimal | None:
    try:
        return None if value in (None, "") else Decimal(str(value))
    except ArithmeticError:
        return None


@dataclass(frozen=True)
class _Effective:
    session_id: str | None
    budget_usd: Decimal | None
    project: str | None
    team: str | None
    counter: IterationCounter


class _Call:
    """What the SDK knows of one logical call (all its retries)."""

    __slots__ = ("call_id", "direct", "iteration", "session_id", "started", "started_at")

    def __init__(self, iteration: int | None, session_id: str | None) -> None:
        self.call_id = uuid.uuid4().hex
        self.iteration = iteration
        self.session_id = session_id
        self.direct = False
        self.started = time.perf_counter()
        self.started_at = datetime.now(timezone.utc)


class Watch:
    def __init__(
        self,
        config: AgentWatchConfig,
        provider: Provider,
        counter: IterationCounter | None = None,
        *,
        checker: BudgetChecker | None = None,
        reporter: UsageReporter | None = None,
    ) -> None:
        self.config = config
        self.provider = provider
        self.counter = counter or IterationCounter()
        self.checker = checker or BudgetChecker(
            config.url, config.api_key, timeout_s=config.check_timeout_s, fail_closed=config.fail_closed
        )
        self.reporter = reporter
        if reporter is None and (config.direct_mode or config.direct_fallback):
            self.reporter = UsageReporter(config.url, config.api_key)
        self._calls: OrderedDict[str, _Call] = OrderedDict()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ per call

    def _effective(self) -> _Effective:
        """The session settings in force: an active ``agentwatch_session`` wins over the client's."""
        s = current_session()
        cfg = self.config
        if s is None:
            return _Effective(cfg.session_id, cfg.session_budget_usd, cfg.project, cfg.team, self.counter)
        return _Effective(
            s.session_id,
            s.budget_usd if s.budget_usd is not None else cfg.session_budget_usd,
            s.project or cfg.project,
            s.team or cfg.team,
            s.counter,
        )

    def begin(self, options: RequestOptions) -> tuple[_Call, bool]:
        """The call these options belong to, and whether this is its first attempt.

        The official SDKs re-run ``_prepare_options`` on every retry with a copy of the same
        options; the idempotency key they set once per call tells the attempts apart, so a
        retry keeps its iteration number and is not checked twice.
        """
        key = options.idempotency_key
        with self._lock:
            if key is not None and key in self._calls:
                return self._calls[key], False
        eff = self._effective()
        explicit = _header(options.headers, H_ITERATION)
        iteration = None if explicit is not None or eff.session_id is None else eff.counter.next()
        call = _Call(iteration, eff.session_id)
        if key is not None:
            with self._lock:
                self._calls[key] = call
                while len(self._calls) > _REMEMBERED_CALLS:
                    self._calls.popitem(last=False)
        return call, True

    def headers(self, options: RequestOptions, call: _Call) -> dict[str, Any]:
        eff = self._effective()
        add: dict[str, str] = {}
        if eff.session_id:
            add[H_SESSION] = eff.session_id
        if call.iteration is not None:
            add[H_ITERATION] = str(call.iteration)
        if eff.budget_usd is not None:
            add[H_BUDGET] = str(eff.budget_usd)
        if eff.project:
            add[H_PROJECT] = eff.project
        if eff.team:
            add[H_TEAM] = eff.team
        current = dict(options.headers or {})
        # What the caller set on this request wins over the client's settings.
        lowered = {k.lower() for k in current if isinstance(k, str)}
        return {**{k: v for k, v in add.items() if k.lower() not in lowered}, **current}

    def route_direct(self, options: RequestOptions) -> None:
        """Send this request straight to the provider with the provider key (fallback)."""
        cfg = self.config
        base = cfg.provider_base_url or ""
        path = options.url if options.url.startswith("/") else f"/{options.url}"
        options.url = f"{base}{path}"
        auth = (
            {"Authorization": f"Bearer {cfg.provider_api_key}"}
            if self.provider == "openai"
            else {"x-api-key": cfg.provider_api_key or ""}
        )
        options.headers = {**dict(options.headers or {}), **auth}

    def _fall_back(self, options: RequestOptions, call: _Call) -> None:
        call.direct = True
        self.route_direct(options)

    def _plan(self, options: RequestOptions, call: _Call, first: bool) -> tuple[str | None, bool]:
        """Set this attempt's headers; return the session to check before it, if any, and
        whether it may fall back to the provider should the gateway be down.

        Only a call's first attempt is checked and may fall back; a retry goes where the
        first attempt went.
        """
        options.headers = self.headers(options, call)
        cfg = self.config
        if cfg.direct_mode:
            # The official client already points at the provider.
            call.direct = True
            return None, False
        if call.direct:
            self._fall_back(options, call)
            return None, False
        to_check = call.session_id if first and cfg.enforcement_mode else None
        return to_check or None, first and cfg.direct_fallback

    def prepare(self, options: RequestOptions, call: _Call, first: bool) -> None:
        to_check, may_fall_back = self._plan(options, call, first)
        status = self.checker.check(to_check) if to_check else None
        # A check that was answered proves the gateway up; without an answer, probe it.
        if may_fall_back and status is None and not self.checker.reachable():
            self._fall_back(options, call)

    async def aprepare(self, options: RequestOptions, call: _Call, first: bool) -> None:
        to_check, may_fall_back = self._plan(options, call, first)
        status = await self.checker.acheck(to_check) if to_check else None
        if may_fall_back and status is None and not await self.checker.areachable():
            self._fall_back(options, call)

    def call_of(self, options: RequestOptions) -> _Call | None:
        key = options.idempotency_key
        if key is None:
            return None
        with self._lock:
            return self._calls.get(key)

    # --------------------------------------------------------------- 402 mapping

    def refusal(self, response: _Response, body: object) -> AgentBudgetExceeded | AgentSessionPaused | None:
        if response.status_code != 402:
            return None
        err = body.get("error", body) if isinstance(body, dict) else None
        if not isinstance(err, dict):
            return None
        code = err.get("code") or err.get("type")
        message = str(err.get("message") or code)
        session_id = err.get("session_id") or _header(response.headers, H_SESSION) or self._effective().session_id
        if code == "session_paused":
            return AgentSessionPaused(message, session_id=session_id)
        if code != "budget_exceeded":
            return None
        spent = _dec(err.get("spent_usd")) or _dec(_header(response.headers, H_SPENT))
        budget = _dec(err.get("budget_usd"))
        remaining = _dec(_header(response.headers, H_REMAINING))
        if budget is None and spent is not None and remaining is not None:
            budget = spent + remaining
        return AgentBudgetExceeded(message, session_id=session_id, spent_usd=spent, budget_usd=budget)

    # -------------------------------------------------------- direct-mode usage

    def _record(self, call: _Call, options: RequestOptions, usage: Usage, status: int, streamed: bool) -> None:
        if self.reporter is None:
            return
        body = options.json_data if isinstance(options.json_data, dict) else {}
        path = options.url.split("?", 1)[0]
        for prefix in ("http://", "https://"):
            if path.startswith(prefix):
                path = "/" + path[len(prefix) :].split("/", 1)[1]
        endpoint = path.lstrip("/").removeprefix("v1/")
        eff = self._effective()
        self.reporter.report(
            {
                "call_id": call.call_id,
                "session_id": call.session_id,
                "iteration": call.iteration,
                "project": eff.project,
                "team": eff.team,
                "provider": self.provider,
                "model": body.get("model"),
                "endpoint": endpoint,
                "streamed": streamed,
                "status_code": status,
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cached_tokens": usage.cached_tokens,
                "reasoning_tokens": usage.reasoning_tokens,
                "latency_ms": round((time.perf_counter() - call.started) * 1000, 3),
                "started_at": call.started_at.isoformat(),
            }
        )

    def observe(self, options: RequestOptions, result: Any, status: int) -> Any:
        """Report the usage of a direct call; streams are wrapped to report at their end."""
        call = self.call_of(options)
        if call is None or not call.direct or self.reporter is None:
            return result
        iterator = getattr(result, "_iterator", None)
        if iterator is not None and hasattr(iterator, "__next__"):
            result._iterator = self._watch_stream(iterator, call, options, status)
            return result
        if iterator is not None and hasattr(iterator, "__anext__"):
            result._iterator = self._awatch_stream(iterator, call, options, status)
            return result
        usage = Usage()
        absorb_item(usage, result)
        self._record(call, options, usage, status, streamed=False)
        return result

    def _watch_stream(self, inner: Iterator[Any], call: _Call, options: RequestOptions, status: int) -> Iterator[Any]:
        usage = Usage()
        try:
            for item in inner:
                absorb_item(usage, item)
                yield item
        finally:
            self._record(call, options, usage, status, streamed=True)

    async def _awatch_stream(
        self, inner: AsyncIterator[Any], call: _Call, options: RequestOptions, status: int
    ) -> AsyncIterator[Any]:
        usage = Usage()
        try:
            async for item in inner:
                absorb_item(usage, item)
                yield item
        finally:
            self._record(call, options, usage, status, streamed=True)

    def derived(self, config: AgentWatchConfig) -> Watch:
        """The watch of a ``copy()``: same counter unless the session changed."""
        old = self.config
        same_session = config.session_id == old.session_id
        same_gateway = (config.url, config.api_key, config.check_timeout_s, config.fail_closed) == (
            old.url,
            old.api_key,
            old.check_timeout_s,
            old.fail_closed,
        )
        return Watch(
            config,
            self.provider,
            self.counter if same_session else None,
            checker=self.checker if same_gateway else None,
            reporter=self.reporter if same_gateway else None,
        )


def new_watch(provider: Provider, config: AgentWatchConfig) -> Watch:
    """The watch of a new client: ``config`` completed with the provider's key and URL, and checked."""
    config = config.with_provider(provider)
    if config.direct_mode and not config.provider_api_key:
        key_var = "OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY"
        raise AgentWatchConfigError(f"direct mode needs the provider key: {key_var} or agentwatch_provider_api_key")
    if not config.direct_mode and not config.api_key:
        raise AgentWatchConfigError("an AgentWatch token is needed: agentwatch_api_key= or AGENTWATCH_API_KEY")
    return Watch(config, provider)


def client_args(watch: Watch, base_url: object) -> tuple[str, str]:
    """The api key and base URL to hand the official client."""
    cfg = watch.config
    if cfg.direct_mode:
        return cfg.provider_api_key or "", str(base_url or cfg.provider_base_url)
    return cfg.api_key or "", str(base_url or cfg.proxy_base_url(watch.provider))
