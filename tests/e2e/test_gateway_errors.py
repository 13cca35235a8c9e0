"""Every error the gateway itself produces has the shape of the provider the call was meant
for; upstream errors pass through unchanged and are recorded; a client that leaves
mid-stream cancels the upstream request and is recorded as such."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from services.common.events import CallFinished, Event
from tests.e2e.kafka_events import read_events
from tests.e2e.procs import ServiceProcess, free_port
from tests.fixtures import GatewayFactory

OK = {"Authorization": "Bearer tok-alpha"}
OK_ANT = {"x-api-key": "tok-alpha"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
MSG = {"model": "claude-3-5-haiku-20241022", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


@dataclass(frozen=True)
class Case:
    name: str
    provider: str
    headers: dict[str, str]
    status: int
    kind: str  # openai: error.type / anthropic: error.type
    code: str | None = None  # openai only
    body: Any = field(default=None)
    gateway: str = "main"  # "main" or "dead" (upstream on a closed port)
    passthrough: bool = False


CASES = [
    Case("openai no token", "openai", {}, 401, "invalid_request_error", "invalid_api_key"),
    Case(
        "openai bad token", "openai", {"Authorization": "Bearer nope"}, 401, "invalid_request_error", "invalid_api_key"
    ),
    Case("anthropic bad key", "anthropic", {"x-api-key": "nope"}, 401, "authentication_error"),
    Case("anthropic no key", "anthropic", {}, 401, "authentication_error"),
    Case(
        "bad iteration",
        "openai",
        {**OK, "X-AgentWatch-Iteration": "-1"},
        400,
        "invalid_request_error",
        "invalid_session_header",
    ),
    Case(
        "bad budget",
        "anthropic",
        {**OK_ANT, "X-AgentWatch-Session-Budget-Usd": "abc"},
        400,
        "invalid_request_error",
    ),
    Case(
        "zero budget",
        "openai",
        {**OK, "X-AgentWatch-Session-Budget-Usd": "0"},
        400,
        "invalid_request_error",
        "invalid_session_header",
    ),
    Case(
        "session id too long",
        "openai",
        {**OK, "X-AgentWatch-Session-Id": "x" * 129},
        400,
        "invalid_request_error",
        "invalid_session_header",
    ),
    Case("team too long", "anthropic", {**OK_ANT, "X-AgentWatch-Team": "t" * 129}, 400, "invalid_request_error"),
    Case(
        "openai body too large",
        "openai",
        OK,
        413,
        "invalid_request_error",
        "request_too_large",
        body={**CHAT, "pad": "x" * 5000},
    ),
    Case("anthropic body too large", "anthropic", OK_ANT, 413, "request_too_large", body={**MSG, "pad": "x" * 5000}),
    Case("openai unreachable", "openai", OK, 502, "api_error", "upstream_unreachable", gateway="dead"),
    Case("anthropic unreachable", "anthropic", OK_ANT, 502, "api_error", gateway="dead"),
    Case("openai timeout", "openai", {**OK, "x-fake-latency-ms": "3000"}, 504, "api_error", "upstream_timeout"),
    Case("anthropic timeout", "anthropic", {**OK_ANT, "x-fake-latency-ms": "3000"}, 504, "timeout_error"),
    Case("openai upstream 429", "openai", {**OK, "x-fake-status": "429"}, 429, "fake_error", passthrough=True),
    Case(
        "anthropic upstream 529", "anthropic", {**OK_ANT, "x-fake-status": "529"}, 529, "fake_error", passthrough=True
    ),
    Case("openai upstream 500", "openai", {**OK, "x-fake-status": "500"}, 500, "fake_error", passthrough=True),
]


@pytest.fixture
def gateways(gateway_factory: GatewayFactory) -> dict[str, ServiceProcess]:
    env = {"AGENTWATCH_MAX_BODY_BYTES": "4000", "AGENTWATCH_UPSTREAM_READ_TIMEOUT_S": "1"}
    dead = f"http://127.0.0.1:{free_port()}/v1"
    return {
        "main": gateway_factory(**env),
        "dead": gateway_factory(AGENTWATCH_OPENAI_BASE_URL=dead, AGENTWATCH_ANTHROPIC_BASE_URL=dead),
    }


async def test_error_cases_are_provider_shaped(
    gateways: dict[str, ServiceProcess], kafka_bootstrap: str, topic_prefix: str
) -> None:
    recorded: dict[str, Case] = {}
    async with aiohttp.ClientSession() as http:
        for case in CASES:
            gw = gateways[case.gateway]
            path = "v1/proxy/openai/chat/completions" if case.provider == "openai" else "v1/proxy/anthropic/v1/messages"
            body = case.body or (CHAT if case.provider == "openai" else MSG)
            sid = f"err-{uuid.uuid4().hex[:8]}"
            headers = {"X-AgentWatch-Session-Id": sid, **case.headers}
            async with http.post(f"{gw.url}/{path}", json=body, headers=headers) as r:
                assert r.status == case.status, case.name
                assert r.content_type == "application/json", case.name
                doc = await r.json()
            if case.provider == "openai":
                assert set(doc) == {"error"}, case.name
                assert doc["error"]["type"] == case.kind, case.name
                assert isinstance(doc["error"]["message"], str) and doc["error"]["message"], case.name
                if case.code is not None:
                    assert doc["error"]["code"] == case.code, case.name
            else:
                assert doc["type"] == "error", case.name
                assert doc["error"]["type"] == case.kind, case.name
                assert isinstance(doc["error"]["message"], str) and doc["error"]["message"], case.name
            if case.passthrough:
                assert doc["error"]["message"] == f"fake upstream error {case.status}", case.name
            if case.status in (502, 504) or case.passthrough:
                assert "X-AgentWatch-Call-Id" in r.headers
                recorded[sid] = case

    def done(evs: list[Event]) -> bool:
        return set(recorded) <= {e.session_id for e in evs if isinstance(e, CallFinished)}

    events = await read_events(kafka_bootstrap, f"{topic_prefix}calls", done)
    finished = {e.session_id: e for e in events if isinstance(e, CallFinished)}
    expected_outcome = {502: "upstream_unreachable", 504: "upstream_timeout"}
    for sid, case in recorded.items():
        ev = finished[sid]
        assert ev.status_code == case.status, case.name
        assert ev.outcome == expected_outcome.get(case.status, "upstream_error"), case.name
        assert ev.cost_usd == 0 and ev.price_known, case.name


async def test_client_disconnect_mid_stream_cancels_upstream(
    gateway_factory: GatewayFactory, fake_upstream_proc: ServiceProcess, kafka_bootstrap: str, topic_prefix: str
) -> None:
    gw = gateway_factory()
    sid = f"dc-{uuid.uuid4().hex[:8]}"
    request_id = uuid.uuid4().hex
    headers = {
        **OK_ANT,
        "X-AgentWatch-Session-Id": sid,
        "x-request-id": request_id,
        "x-fake-chunks": "200",
        "x-fake-chunk-delay-ms": "50",
        "x-fake-usage": "input=321,output=999",
    }
    async with aiohttp.ClientSession() as http:
        r = await http.post(f"{gw.url}/v1/proxy/anthropic/v1/messages", json={**MSG, "stream": True}, headers=headers)
        assert r.status == 200
        first = await r.content.readuntil(b"\n\n")
        assert b"message_start" in first
        await r.content.readuntil(b"\n\n")
        r.close()  # the client goes away mid-stream

    aborted: list[str] = []
    async with aiohttp.ClientSession() as http:
        for _ in range(50):
            async with http.get(f"{fake_upstream_proc.url}/_fake/aborted") as resp:
                aborted = await resp.json()
            if request_id in aborted:
                break
            await asyncio.sleep(0.1)
    assert request_id in aborted, "the upstream stream was not cancelled"

    events = await read_events(
        kafka_bootstrap,
        f"{topic_prefix}calls",
        lambda evs: any(isinstance(e, CallFinished) and e.session_id == sid for e in evs),
    )
    ev = next(e for e in events if isinstance(e, CallFinished) and e.session_id == sid)
    assert ev.outcome == "client_disconnected"
    assert ev.status_code == 499
    # What was used before the client left: the input from message_start, not the final output.
    assert ev.input_tokens == 321
    assert ev.output_tokens < 999
    assert json.loads(json.dumps(ev.streamed)) is True
