"""The SDK's own logic, without a gateway: settings, iteration numbers, sessions, copies, 402s.

End-to-end behaviour against the real gateway is in tests/e2e/test_sdk_e2e.py.
"""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from agentwatch import (
    AgentBudgetExceeded,
    AgentSessionPaused,
    AgentWatchConfig,
    AgentWatchConfigError,
    AsyncWatchedAnthropic,
    AsyncWatchedOpenAI,
    GatewayUnavailable,
    WatchedAnthropic,
    WatchedOpenAI,
    agentwatch_session,
)
from agentwatch._checks import BudgetChecker
from agentwatch._core import H_BUDGET, H_ITERATION, H_PROJECT, H_SESSION, H_TEAM, Watch
from agentwatch._session import IterationCounter
from agentwatch._usage import Usage, absorb_item


class _Opts:
    """The attributes of the SDKs' FinalRequestOptions the watch touches."""

    def __init__(self, key: str | None = "k1", headers: dict[str, str] | None = None) -> None:
        self.method = "post"
        self.url = "/chat/completions"
        self.headers: Any = headers or {}
        self.json_data: Any = {"model": "gpt-4o"}
        self.idempotency_key = key


def _watch(**kw: Any) -> Watch:
    cfg = AgentWatchConfig.resolve(api_key="tok", url="http://127.0.0.1:1", environ={}, **kw)
    return Watch(cfg, "openai")


def test_arguments_fall_back_to_environment() -> None:
    env = {
        "AGENTWATCH_API_KEY": "tok-env",
        "AGENTWATCH_URL": "http://gw:9/",
        "AGENTWATCH_PROJECT": "p",
        "AGENTWATCH_TEAM": "t",
        "AGENTWATCH_SESSION_ID": "s",
        "AGENTWATCH_SESSION_BUDGET_USD": "2.50",
        "AGENTWATCH_ENFORCEMENT_MODE": "true",
    }
    cfg = AgentWatchConfig.resolve(environ=env)
    assert (cfg.api_key, cfg.url, cfg.project, cfg.team, cfg.session_id) == ("tok-env", "http://gw:9", "p", "t", "s")
    assert cfg.session_budget_usd == Decimal("2.50") and cfg.enforcement_mode is True
    explicit = AgentWatchConfig.resolve(api_key="tok-arg", session_budget_usd=1, environ=env)
    assert explicit.api_key == "tok-arg" and explicit.session_budget_usd == Decimal(1)


@pytest.mark.parametrize("bad", ["-1", "0", "abc", "nan"])
def test_bad_budget_is_a_config_error(bad: str) -> None:
    with pytest.raises(AgentWatchConfigError):
        AgentWatchConfig.resolve(api_key="t", session_budget_usd=bad, environ={})


def test_missing_token_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTWATCH_API_KEY", raising=False)
    with pytest.raises(AgentWatchConfigError, match="token"):
        WatchedOpenAI()


def test_counter_is_safe_across_threads() -> None:
    counter = IterationCounter()
    seen: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [counter.next() for _ in range(2000)]
        with lock:
            seen.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == list(range(16000))


def test_retries_keep_their_iteration_and_new_calls_get_the_next() -> None:
    w = _watch(session_id="s1")
    c1, first1 = w.begin(_Opts("a"))
    c1_retry, first_retry = w.begin(_Opts("a"))
    c2, _ = w.begin(_Opts("b"))
    assert first1 and not first_retry
    assert c1_retry is c1
    assert (c1.iteration, c2.iteration) == (0, 1)


def test_caller_set_iteration_wins() -> None:
    w = _watch(session_id="s1")
    opts = _Opts("a", {"x-agentwatch-iteration": "41"})
    call, _ = w.begin(opts)
    headers = w.headers(opts, call)
    assert call.iteration is None
    assert headers == {"x-agentwatch-iteration": "41", H_SESSION: "s1"}
    nxt, _ = w.begin(_Opts("b"))
    assert nxt.iteration == 0


def test_headers_carry_the_session() -> None:
    w = _watch(session_id="s1", session_budget_usd="2.00", project="checkout", team="payments")
    opts = _Opts()
    call, _ = w.begin(opts)
    assert w.headers(opts, call) == {
        H_SESSION: "s1",
        H_ITERATION: "0",
        H_BUDGET: "2.00",
        H_PROJECT: "checkout",
        H_TEAM: "payments",
    }


def test_session_helper_shares_one_counter_across_clients_threads_and_tasks() -> None:
    a = _watch(project="default-project")
    b = Watch(a.config, "anthropic")
    iterations: list[int] = []
    with agentwatch_session("shared", budget_usd="3", team="t") as s:
        for w in (a, b, a):
            opts = _Opts(key=None)
            call, _ = w.begin(opts)
            h = w.headers(opts, call)
            assert h[H_SESSION] == "shared" and h[H_BUDGET] == "3" and h[H_TEAM] == "t"
            assert h[H_PROJECT] == "default-project"
            assert call.iteration is not None
            iterations.append(call.iteration)

        async def in_task() -> int:
            call, _ = a.begin(_Opts(key=None))
            assert call.session_id == "shared"
            return call.iteration or 0

        async def many() -> list[int]:
            return list(await asyncio.gather(*(in_task() for _ in range(5))))

        iterations.extend(asyncio.run(many()))
    assert sorted(iterations) == list(range(8))
    assert s.counter.peek() == 8
    call, _ = a.begin(_Opts(key=None))
    assert call.session_id is None and call.iteration is None


@pytest.mark.parametrize("cls", [WatchedOpenAI, AsyncWatchedOpenAI, WatchedAnthropic, AsyncWatchedAnthropic])
def test_copy_and_with_options_keep_the_subclass_and_settings(cls: Any) -> None:
    client = cls(
        agentwatch_api_key="tok",
        agentwatch_url="http://127.0.0.1:1",
        agentwatch_session_id="s1",
        agentwatch_project="p",
        agentwatch_session_budget_usd=2,
    )
    provider = "openai" if "OpenAI" in cls.__name__ else "anthropic"
    assert str(client.base_url).rstrip("/") == f"http://127.0.0.1:1/v1/proxy/{provider}"
    assert client.api_key == "tok"
    copied = client.with_options(timeout=3)
    assert type(copied) is cls
    assert copied.agentwatch == client.agentwatch
    assert copied._aw.counter is client._aw.counter
    other = client.copy(agentwatch_session_id="s2", agentwatch_team="t2")
    assert type(other) is cls
    assert other.agentwatch.session_id == "s2" and other.agentwatch.team == "t2"
    assert other.agentwatch.project == "p"
    assert other._aw.counter is not client._aw.counter


@pytest.mark.parametrize(
    ("cls", "status_error"),
    [
        (WatchedOpenAI, openai.APIStatusError),
        (AsyncWatchedOpenAI, openai.APIStatusError),
        (WatchedAnthropic, anthropic.APIStatusError),
        (AsyncWatchedAnthropic, anthropic.APIStatusError),
    ],
)
def test_every_client_maps_a_402_to_an_error_of_both_sdks(cls: Any, status_error: type[Exception]) -> None:
    client = cls(agentwatch_api_key="tok", agentwatch_url="http://127.0.0.1:1", agentwatch_session_id="s1")
    request = httpx2.Request("POST", "http://127.0.0.1:1/v1/proxy/x")

    def error_for(body: object, headers: dict[str, str] | None = None) -> Any:
        response = httpx2.Response(402, json=body, headers=headers, request=request)
        return client._make_status_error_from_response(response)

    over = error_for(
        {"error": {"type": "budget_exceeded", "message": "over", "spent_usd": "0.9", "budget_usd": "1"}},
        {"X-AgentWatch-Session-Id": "s-gw"},
    )
    assert over.status_code == 402 and "over" in str(over)
    assert isinstance(over, AgentBudgetExceeded) and isinstance(over, status_error)
    assert (over.session_id, over.spent_usd, over.budget_usd) == ("s-gw", Decimal("0.9"), Decimal(1))
    paused = error_for({"error": {"code": "session_paused", "message": "paused", "type": "x"}})
    assert paused.status_code == 402
    assert isinstance(paused, AgentSessionPaused) and isinstance(paused, status_error)
    assert paused.session_id == "s1"
    other = error_for({"error": {"type": "payment_required", "message": "pay"}})
    assert isinstance(other, status_error) and not isinstance(other, AgentBudgetExceeded | AgentSessionPaused)


def _fallback_watch(**kw: Any) -> Watch:
    # Nothing listens on port 1: the budget check and the liveness probe both fail at once.
    cfg = AgentWatchConfig.resolve(
        api_key="tok",
        url="http://127.0.0.1:1",
        provider_api_key="pk",
        provider_base_url="http://provider.invalid/v1",
        environ={},
        **kw,
    )
    return Watch(cfg, "openai")


async def _prepare(w: Watch, opts: _Opts, use_async: bool) -> Any:
    call, first = w.begin(opts)
    if use_async:
        await w.aprepare(opts, call, first)
    else:
        w.prepare(opts, call, first)
    return call


@pytest.mark.parametrize("use_async", [False, True])
async def test_fallback_sends_a_call_and_its_retries_to_the_provider(use_async: bool) -> None:
    w = _fallback_watch(session_id="s1", enforcement_mode=True, direct_fallback=True)
    first = _Opts("a")
    call = await _prepare(w, first, use_async)
    retry = _Opts("a")
    assert await _prepare(w, retry, use_async) is call
    assert call.direct and call.iteration == 0
    for opts in (first, retry):
        assert opts.url == "http://provider.invalid/v1/chat/completions"
        assert opts.headers["Authorization"] == "Bearer pk" and opts.headers[H_ITERATION] == "0"
    # Without a session there is nothing to check, but the fallback still applies.
    lone = _fallback_watch(enforcement_mode=True, direct_fallback=True)
    opts = _Opts("b")
    assert (await _prepare(lone, opts, use_async)).direct and opts.url.startswith("http://provider.invalid/")


@pytest.mark.parametrize("use_async", [False, True])
async def test_direct_mode_and_no_fallback_leave_the_url_alone(use_async: bool) -> None:
    direct = _fallback_watch(session_id="s1", direct_mode=True, enforcement_mode=True, direct_fallback=True)
    opts = _Opts("a")
    assert (await _prepare(direct, opts, use_async)).direct
    assert opts.url == "/chat/completions" and "Authorization" not in opts.headers
    proxied = _fallback_watch(session_id="s1", enforcement_mode=True)
    opts = _Opts("b")
    assert not (await _prepare(proxied, opts, use_async)).direct
    assert opts.url == "/chat/completions" and opts.headers[H_SESSION] == "s1"


def _response(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers or {})


def test_402_budget_exceeded_maps_with_figures() -> None:
    w = _watch(session_id="s1")
    body = {"error": {"message": "over", "type": "budget_exceeded", "code": "budget_exceeded"}}
    err = w.refusal(
        _response(402, {"X-AgentWatch-Session-Spent-Usd": "0.9", "X-AgentWatch-Session-Remaining-Usd": "0.1"}), body
    )
    assert isinstance(err, AgentBudgetExceeded)
    assert (err.session_id, err.spent_usd, err.budget_usd) == ("s1", Decimal("0.9"), Decimal("1.0"))
    anthropic_body = {
        "type": "error",
        "error": {"type": "budget_exceeded", "message": "over", "spent_usd": "1", "budget_usd": "1"},
    }
    err2 = w.refusal(_response(402), anthropic_body)
    assert isinstance(err2, AgentBudgetExceeded) and err2.budget_usd == Decimal(1)


def test_402_paused_and_other_errors() -> None:
    w = _watch(session_id="s1")
    paused = w.refusal(_response(402), {"error": {"code": "session_paused", "message": "paused", "type": "x"}})
    assert isinstance(paused, AgentSessionPaused) and paused.session_id == "s1"
    assert w.refusal(_response(402), {"error": {"code": "payment_required"}}) is None
    assert w.refusal(_response(429), {"error": {"code": "budget_exceeded"}}) is None


def test_usage_shapes() -> None:
    u = Usage()
    absorb_item(
        u,
        {
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 3,
                "prompt_tokens_details": {"cached_tokens": 2},
                "completion_tokens_details": {"reasoning_tokens": 1},
            }
        },
    )
    assert (u.input_tokens, u.output_tokens, u.cached_tokens, u.reasoning_tokens) == (10, 3, 2, 1)
    a = Usage()
    absorb_item(a, {"type": "message_start", "message": {"usage": {"input_tokens": 7, "output_tokens": 1}}})
    absorb_item(a, {"type": "message_delta", "usage": {"output_tokens": 9}})
    assert (a.input_tokens, a.output_tokens) == (7, 9)
    r = Usage()
    absorb_item(r, {"type": "response.completed", "response": {"usage": {"input_tokens": 4, "output_tokens": 5}}})
    assert (r.input_tokens, r.output_tokens, r.seen) == (4, 5, True)


@pytest.mark.parametrize("figure", ["abc", "NaN", "Infinity", [1], {"usd": 1}, True])
def test_a_garbled_budget_check_answer_fails_open(figure: Any) -> None:
    """A gateway answering with a figure that is not a number: the check fails open (None), no exception."""
    import http.server
    import json

    body = json.dumps({"session_id": "s", "allowed": True, "spent_usd": figure, "budget_usd": "1"}).encode()

    class Garbled(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Garbled)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        checker = BudgetChecker(f"http://127.0.0.1:{server.server_address[1]}", "tok", timeout_s=2, fail_closed=False)
        try:
            assert checker.check("s") is None
            assert asyncio.run(checker.acheck("s")) is None
        finally:
            checker.close()
        closed = BudgetChecker(f"http://127.0.0.1:{server.server_address[1]}", "tok", timeout_s=2, fail_closed=True)
        try:
            with pytest.raises(GatewayUnavailable):
                closed.check("s")
        finally:
            closed.close()
    finally:
        server.shutdown()
        server.server_close()
