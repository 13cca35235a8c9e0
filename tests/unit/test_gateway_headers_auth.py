"""Session header validation and token authentication."""

from __future__ import annotations

from decimal import Decimal

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from services.gateway.admission import IterationCounter
from services.gateway.auth import TokenAuthenticator
from services.gateway.errors import AuthenticationFailed, InvalidSessionHeader
from services.gateway.session_headers import NO_SESSION, parse_session_headers


def h(**kv: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in kv.items()}))


def test_valid_headers() -> None:
    s = parse_session_headers(
        h(
            X_AgentWatch_Session_Id="run-1",
            X_AgentWatch_Iteration="3",
            X_AgentWatch_Session_Budget_Usd="2.50",
            X_AgentWatch_Project="p",
            X_AgentWatch_Team="t",
        )
    )
    assert (s.session_id, s.iteration, s.budget_usd, s.project, s.team) == ("run-1", 3, Decimal("2.50"), "p", "t")
    assert parse_session_headers(h()) is NO_SESSION


@pytest.mark.parametrize(
    "name,value",
    [
        ("X-AgentWatch-Session-Id", ""),
        ("X-AgentWatch-Session-Id", "a" * 129),
        ("X-AgentWatch-Session-Id", "tab\there"),
        ("X-AgentWatch-Session-Id", "é"),
        ("X-AgentWatch-Iteration", "-1"),
        ("X-AgentWatch-Iteration", "1.5"),
        ("X-AgentWatch-Iteration", "٣"),
        ("X-AgentWatch-Session-Budget-Usd", "0"),
        ("X-AgentWatch-Session-Budget-Usd", "-1"),
        ("X-AgentWatch-Session-Budget-Usd", "NaN"),
        ("X-AgentWatch-Session-Budget-Usd", "Infinity"),
        ("X-AgentWatch-Session-Budget-Usd", "abc"),
        ("X-AgentWatch-Project", "p" * 129),
        ("X-AgentWatch-Team", ""),
    ],
)
def test_invalid_headers(name: str, value: str) -> None:
    with pytest.raises(InvalidSessionHeader):
        parse_session_headers(CIMultiDictProxy(CIMultiDict({name: value})))


def test_token_auth() -> None:
    auth = TokenAuthenticator({"tok-a": "alpha"})
    assert auth.authenticate(h(Authorization="Bearer tok-a"), allow_x_api_key=False) == "alpha"
    assert auth.authenticate(h(x_api_key="tok-a"), allow_x_api_key=True) == "alpha"
    for headers, allow in ((h(x_api_key="tok-a"), False), (h(Authorization="Bearer tok-b"), True), (h(), True)):
        with pytest.raises(AuthenticationFailed):
            auth.authenticate(headers, allow_x_api_key=allow)
    assert "tok-a" not in repr(vars(auth))


def test_iteration_counter_assigns_next_index() -> None:
    it = IterationCounter(max_sessions=2)
    assert [it.assign("t", "s", None) for _ in range(3)] == [0, 1, 2]
    assert it.assign("t", "s", 10) == 10
    assert it.assign("t", "s", None) == 11
    assert it.assign("t", None, None) is None
    assert it.assign("u", "s", None) == 0


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.gateway.config import GatewaySettings

    monkeypatch.setenv("TENANT_TOKEN_MAP", "")
    monkeypatch.setenv("OPENAI_API_KEY", "")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant")
    monkeypatch.setenv("AGENTWATCH_OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    s = GatewaySettings()
    assert s.tenant_token_map == {}
    assert s.openai_api_key is None
    assert s.anthropic_api_key is not None and s.anthropic_api_key.get_secret_value() == "sk-ant"
    assert "sk-ant" not in repr(s)
    assert s.openai_base_url == "http://127.0.0.1:1/v1"
    assert (s.host, s.port, s.anthropic_version) == ("127.0.0.1", 8080, "2023-06-01")
    monkeypatch.setenv("TENANT_TOKEN_MAP", '{"tok": "acme"}')
    assert GatewaySettings().tenant_token_map == {"tok": "acme"}
