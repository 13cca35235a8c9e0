"""The official openai and anthropic SDKs through the gateway process to the fake upstream
process: what the client gets equals a direct call, and each CallFinished event read from
Kafka has the fake's exact token counts and genai-prices' cost for them."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest
from anthropic.types import MessageParam
from genai_prices import Usage, calc_price
from openai.types.chat import ChatCompletionMessageParam

from services.common.events import CallFinished, CallStarted, Event
from tests.e2e.kafka_events import read_events
from tests.e2e.procs import ServiceProcess
from tests.fixtures import ANTHROPIC_KEY, OPENAI_KEY, GatewayFactory

OPENAI_USAGE = {"input": 1234, "output": 56, "cached": 200, "reasoning": 7}
ANTHROPIC_USAGE = {"input": 1000, "output": 50, "cached": 100, "cache_write": 20}
MSGS: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello"}]
A_MSGS: list[MessageParam] = [{"role": "user", "content": "Say hello"}]


def _usage_header(u: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in u.items())


def _dump(obj: Any) -> Any:
    if isinstance(obj, list):
        return [_dump(o) for o in obj]
    return obj.model_dump()


def _fake_requests(fake: ServiceProcess) -> list[dict[str, Any]]:
    with urllib.request.urlopen(fake.url + "/_fake/requests", timeout=5) as r:
        data: list[dict[str, Any]] = json.loads(r.read())
    return data


def _clear(fake: ServiceProcess) -> None:
    req = urllib.request.Request(fake.url + "/_fake/requests", method="DELETE")
    urllib.request.urlopen(req, timeout=5).close()


def _price(provider: str, model: str, *, inp: int, out: int, cached: int, cache_write: int = 0) -> Decimal:
    usage = Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cached, cache_write_tokens=cache_write)
    return Decimal(calc_price(usage, model, provider_id=provider).total_price)


OPENAI_CASES: dict[str, Callable[[openai.OpenAI], Any]] = {
    "chat": lambda c: c.chat.completions.create(model="gpt-4o-mini", messages=MSGS),
    "chat_stream": lambda c: list(c.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)),
    "chat_stream_usage": lambda c: list(
        c.chat.completions.create(
            model="gpt-4o-mini",
            messages=MSGS,
            stream=True,
            stream_options={"include_usage": True},
        )
    ),
    "responses": lambda c: c.responses.create(model="gpt-4o-mini", input="Say hello"),
    "responses_stream": lambda c: list(c.responses.create(model="gpt-4o-mini", input="Say hello", stream=True)),
    "embeddings": lambda c: c.embeddings.create(model="text-embedding-3-small", input=["a", "b"]),
}


def _openai_client(base_url: str, key: str, session_id: str) -> openai.OpenAI:
    headers = {"X-AgentWatch-Session-Id": session_id, "x-fake-usage": _usage_header(OPENAI_USAGE)}
    return openai.OpenAI(base_url=base_url, api_key=key, default_headers=headers, max_retries=0)


async def _finished_by_session(bootstrap: str, topic: str, sessions: set[str]) -> dict[str, CallFinished]:
    def done(evs: list[Event]) -> bool:
        return sessions <= {e.session_id for e in evs if isinstance(e, CallFinished)}

    events = await read_events(bootstrap, topic, done)
    started = {e.session_id for e in events if isinstance(e, CallStarted)}
    assert sessions <= started
    return {e.session_id: e for e in events if isinstance(e, CallFinished) and e.session_id in sessions}


async def test_openai_sync_sdk_through_gateway(
    gateway_factory: GatewayFactory, fake_upstream_proc: ServiceProcess, kafka_bootstrap: str, topic_prefix: str
) -> None:
    gw = gateway_factory()
    _clear(fake_upstream_proc)
    sessions = {}
    for name, call in OPENAI_CASES.items():
        sid = f"s-{name}-{uuid.uuid4().hex[:6]}"
        sessions[sid] = name
        direct = call(_openai_client(f"{fake_upstream_proc.url}/v1", OPENAI_KEY, sid))
        via = call(_openai_client(f"{gw.url}/v1/proxy/openai", "tok-alpha", sid))
        assert _dump(via) == _dump(direct), name
    finished = await _finished_by_session(kafka_bootstrap, f"{topic_prefix}calls", set(sessions))
    for sid, name in sessions.items():
        ev = finished[sid]
        assert (ev.status_code, ev.outcome, ev.tenant) == (200, "ok", "alpha"), name
        if name == "embeddings":
            assert (ev.input_tokens, ev.output_tokens) == (OPENAI_USAGE["input"], 0)
            assert ev.cost_usd == _price("openai", "text-embedding-3-small", inp=OPENAI_USAGE["input"], out=0, cached=0)
            continue
        u = OPENAI_USAGE
        assert (ev.input_tokens, ev.output_tokens, ev.cached_tokens, ev.reasoning_tokens) == (
            u["input"],
            u["output"],
            u["cached"],
            u["reasoning"],
        ), name
        assert ev.cost_usd == _price("openai", "gpt-4o-mini", inp=u["input"], out=u["output"], cached=u["cached"]), name
        assert ev.price_known
        assert ev.streamed == name.endswith(("stream", "stream_usage"))
        if ev.streamed:
            assert ev.ttft_ms is not None
    # The provider key reached the fake; the client token never did.
    records = _fake_requests(fake_upstream_proc)
    assert len(records) == 2 * len(OPENAI_CASES)
    assert all(r["headers"]["Authorization"] == f"Bearer {OPENAI_KEY}" for r in records)
    assert "tok-alpha" not in json.dumps(records)
    # Calls alternate direct / through the gateway; the gateway strips its own headers.
    assert not any(k.lower().startswith("x-agentwatch") for r in records[1::2] for k in r["headers"])


async def test_openai_async_sdk_through_gateway(
    gateway_factory: GatewayFactory, fake_upstream_proc: ServiceProcess, kafka_bootstrap: str, topic_prefix: str
) -> None:
    gw = gateway_factory()
    sid = f"s-async-{uuid.uuid4().hex[:6]}"
    results = []
    for base, key in ((f"{fake_upstream_proc.url}/v1", OPENAI_KEY), (f"{gw.url}/v1/proxy/openai", "tok-alpha")):
        headers = {"X-AgentWatch-Session-Id": sid, "x-fake-usage": _usage_header(OPENAI_USAGE)}
        async with openai.AsyncOpenAI(base_url=base, api_key=key, default_headers=headers, max_retries=0) as c:
            plain = await c.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
            chunks = [
                ch async for ch in await c.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
            ]
            resp = await c.responses.create(model="gpt-4o-mini", input="Say hello")
            emb = await c.embeddings.create(model="text-embedding-3-small", input="a")
            results.append(_dump([plain, *chunks, resp, emb]))
    assert results[0] == results[1]

    def done(evs: list[Event]) -> bool:
        return sum(isinstance(e, CallFinished) for e in evs) >= 4

    events = await read_events(kafka_bootstrap, f"{topic_prefix}calls", done)
    finished = [e for e in events if isinstance(e, CallFinished)]
    assert len(finished) == 4
    assert {e.endpoint for e in finished} == {"chat", "responses", "embeddings"}
    chat = [e for e in finished if e.endpoint == "chat"]
    assert all((e.input_tokens, e.output_tokens) == (1234, 56) for e in chat)


async def test_anthropic_sdk_through_gateway(
    gateway_factory: GatewayFactory, fake_upstream_proc: ServiceProcess, kafka_bootstrap: str, topic_prefix: str
) -> None:
    gw = gateway_factory()
    _clear(fake_upstream_proc)
    model = "claude-3-5-haiku-20241022"

    def client(base: str, key: str, sid: str) -> anthropic.Anthropic:
        headers = {"X-AgentWatch-Session-Id": sid, "x-fake-usage": _usage_header(ANTHROPIC_USAGE)}
        return anthropic.Anthropic(base_url=base, api_key=key, default_headers=headers, max_retries=0)

    def stream_helper(c: anthropic.Anthropic) -> Any:
        with c.messages.stream(model=model, max_tokens=64, messages=A_MSGS) as s:
            texts = list(s.text_stream)
            return [texts, s.get_final_message().model_dump()]

    cases: dict[str, Callable[[anthropic.Anthropic], Any]] = {
        "create": lambda c: c.messages.create(model=model, max_tokens=64, messages=A_MSGS).model_dump(),
        "stream_helper": stream_helper,
        "raw_stream": lambda c: _dump(
            list(c.messages.create(model=model, max_tokens=64, messages=A_MSGS, stream=True))
        ),
    }
    sessions = {}
    for name, call in cases.items():
        sid = f"s-{name}-{uuid.uuid4().hex[:6]}"
        sessions[sid] = name
        direct = call(client(fake_upstream_proc.url, ANTHROPIC_KEY, sid))
        via = call(client(f"{gw.url}/v1/proxy/anthropic", "tok-beta", sid))
        assert via == direct, name
    finished = await _finished_by_session(kafka_bootstrap, f"{topic_prefix}calls", set(sessions))
    u = ANTHROPIC_USAGE
    total_in = u["input"] + u["cached"] + u["cache_write"]
    for sid, name in sessions.items():
        ev = finished[sid]
        assert (ev.tenant, ev.status_code, ev.outcome, ev.provider) == ("beta", 200, "ok", "anthropic"), name
        assert (ev.input_tokens, ev.output_tokens, ev.cached_tokens) == (total_in, u["output"], u["cached"]), name
        assert ev.cost_usd == _price(
            "anthropic", model, inp=total_in, out=u["output"], cached=u["cached"], cache_write=u["cache_write"]
        ), name
    records = _fake_requests(fake_upstream_proc)
    assert len(records) == 2 * len(cases)
    via_gateway = records[1::2]
    assert all(r["headers"]["x-api-key"] == ANTHROPIC_KEY for r in via_gateway)
    assert not any("Authorization" in r["headers"] for r in via_gateway)
    assert all(r["headers"]["anthropic-version"] for r in records)
    assert "tok-beta" not in json.dumps(records)


@pytest.mark.parametrize("stream", [False, True])
async def test_unknown_model_has_no_cost_never_zero(
    gateway_factory: GatewayFactory, kafka_bootstrap: str, topic_prefix: str, stream: bool
) -> None:
    gw = gateway_factory()
    sid = f"s-unknown-{uuid.uuid4().hex[:6]}"
    c = _openai_client(f"{gw.url}/v1/proxy/openai", "tok-alpha", sid)
    if stream:
        list(c.chat.completions.create(model="no-such-model-xyz", messages=MSGS, stream=True))
    else:
        c.chat.completions.create(model="no-such-model-xyz", messages=MSGS)
    ev = (await _finished_by_session(kafka_bootstrap, f"{topic_prefix}calls", {sid}))[sid]
    assert ev.input_tokens == OPENAI_USAGE["input"]
    assert ev.cost_usd is None
    assert ev.price_known is False
