"""The aw-sdk clients against the real gateway process (and the fake upstream process):
every client class with and without streaming, iteration numbers, fail-open, direct mode
and the direct fallback with usage reaching the gateway after it returns."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import openai
import pytest
from agentwatch import (
    AsyncWatchedAnthropic,
    AsyncWatchedOpenAI,
    GatewayUnavailable,
    WatchedAnthropic,
    WatchedOpenAI,
    agentwatch_session,
)

from services.common.events import CallFinished, Event
from tests.e2e.kafka_events import read_events
from tests.e2e.procs import ServiceProcess
from tests.fixtures import ANTHROPIC_KEY, OPENAI_KEY, GatewayFactory

USAGE = "input=321,output=12"
HEADERS = {"x-fake-usage": USAGE}
MSG: Any = [{"role": "user", "content": "hello"}]


async def _finished(bootstrap: str, topic: str, session: str, n: int, timeout_s: float = 30.0) -> list[CallFinished]:
    def done(evs: list[Event]) -> bool:
        return sum(isinstance(e, CallFinished) and e.session_id == session for e in evs) >= n

    events = await read_events(bootstrap, topic, done, timeout_s=timeout_s)
    return [e for e in events if isinstance(e, CallFinished) and e.session_id == session]


def _sync_calls(oai: WatchedOpenAI, ant: WatchedAnthropic) -> list[str]:
    texts = []
    r = oai.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    texts.append(r.choices[0].message.content or "")
    chunks = list(oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))
    texts.append("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
    m = ant.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=MSG)
    texts.append(m.content[0].text if m.content[0].type == "text" else "")
    with ant.messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=MSG) as stream:
        texts.append("".join(stream.text_stream))
    return texts


async def test_every_client_class_with_and_without_streaming(
    gateway_factory: GatewayFactory, kafka_bootstrap: str, topic_prefix: str
) -> None:
    gw = gateway_factory()
    sid = f"sdk-{uuid.uuid4().hex[:8]}"
    common: dict[str, Any] = {
        "agentwatch_api_key": "tok-alpha",
        "agentwatch_url": gw.url,
        "agentwatch_project": "checkout-service",
        "agentwatch_team": "payments-eng",
        "default_headers": HEADERS,
        "max_retries": 0,
    }
    with agentwatch_session(sid, budget_usd="5"):
        texts = _sync_calls(WatchedOpenAI(**common), WatchedAnthropic(**common))
        aoai, aant = AsyncWatchedOpenAI(**common), AsyncWatchedAnthropic(**common)
        r = await aoai.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        texts.append(r.choices[0].message.content or "")
        stream = await aoai.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
        texts.append("".join([c.choices[0].delta.content or "" async for c in stream if c.choices]))
        m = await aant.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=MSG)
        texts.append(m.content[0].text if m.content[0].type == "text" else "")
        async with aant.messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=MSG) as s:
            texts.append("".join([t async for t in s.text_stream]))
    assert all(texts), texts
    finished = await _finished(kafka_bootstrap, f"{topic_prefix}calls", sid, 8)
    assert len(finished) == 8
    assert sorted(e.iteration for e in finished if e.iteration is not None) == list(range(8))
    for e in finished:
        assert (e.tenant, e.project, e.team, e.status_code) == ("alpha", "checkout-service", "payments-eng", 200)
        assert (e.input_tokens, e.output_tokens) == (321, 12)
    assert {e.streamed for e in finished} == {True, False}


async def test_enforcement_fails_open_when_the_gateway_is_down(tmp_root: Any) -> None:
    dead = f"http://127.0.0.1:{_free_port()}"
    client = WatchedOpenAI(
        agentwatch_api_key="tok-alpha",
        agentwatch_url=dead,
        agentwatch_session_id="s-open",
        agentwatch_enforcement_mode=True,
        max_retries=0,
    )
    # The pre-flight check cannot be made: the call is attempted (and fails to connect).
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    strict = WatchedOpenAI(
        agentwatch_api_key="tok-alpha",
        agentwatch_url=dead,
        agentwatch_session_id="s-closed",
        agentwatch_enforcement_mode=True,
        agentwatch_fail_closed=True,
        max_retries=0,
    )
    with pytest.raises(GatewayUnavailable):
        strict.chat.completions.create(model="gpt-4o-mini", messages=MSG)


def _free_port() -> int:
    from tests.e2e.procs import free_port

    return free_port()


async def test_direct_mode_reports_usage_to_ingest(
    gateway_factory: GatewayFactory, fake_upstream_proc: ServiceProcess, kafka_bootstrap: str, topic_prefix: str
) -> None:
    gw = gateway_factory()
    sid = f"direct-{uuid.uuid4().hex[:8]}"
    oai = WatchedOpenAI(
        agentwatch_api_key="tok-alpha",
        agentwatch_url=gw.url,
        agentwatch_session_id=sid,
        agentwatch_direct_mode=True,
        agentwatch_provider_api_key=OPENAI_KEY,
        base_url=f"{fake_upstream_proc.url}/v1",
        default_headers=HEADERS,
        max_retries=0,
    )
    ant = WatchedAnthropic(
        agentwatch_api_key="tok-alpha",
        agentwatch_url=gw.url,
        agentwatch_session_id=sid,
        agentwatch_direct_mode=True,
        agentwatch_provider_api_key=ANTHROPIC_KEY,
        base_url=fake_upstream_proc.url,
        default_headers=HEADERS,
        max_retries=0,
    )
    oai.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    list(
        oai.chat.completions.create(
            model="gpt-4o-mini", messages=MSG, stream=True, stream_options={"include_usage": True}
        )
    )
    ant.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=MSG)
    with ant.messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=MSG) as stream:
        stream.until_done()
    assert oai._aw.reporter is not None and oai._aw.reporter.flush(10)
    assert ant._aw.reporter is not None and ant._aw.reporter.flush(10)
    finished = await _finished(kafka_bootstrap, f"{topic_prefix}calls", sid, 4)
    assert len(finished) == 4
    for e in finished:
        assert e.source == "ingest" and e.tenant == "alpha"
        assert (e.input_tokens, e.output_tokens) == (321, 12)
        assert e.cost_usd is not None and e.cost_usd > Decimal(0)
    assert {e.provider for e in finished} == {"openai", "anthropic"}


async def test_direct_fallback_while_gateway_down_then_usage_arrives(
    gateway_factory: GatewayFactory, fake_upstream_proc: ServiceProcess, kafka_bootstrap: str, topic_prefix: str
) -> None:
    gw = gateway_factory()
    port = gw.port
    gw.stop()
    sid = f"fallback-{uuid.uuid4().hex[:8]}"
    oai = WatchedOpenAI(
        agentwatch_api_key="tok-alpha",
        agentwatch_url=f"http://127.0.0.1:{port}",
        agentwatch_session_id=sid,
        agentwatch_enforcement_mode=True,
        agentwatch_direct_fallback=True,
        agentwatch_provider_api_key=OPENAI_KEY,
        default_headers=HEADERS,
        max_retries=0,
    )
    oai._aw.config = oai._aw.config.merged(provider_base_url=f"{fake_upstream_proc.url}/v1")
    r = oai.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert r.choices[0].message.content
    reporter = oai._aw.reporter
    assert reporter is not None and not reporter.flush(0.5)  # queued: the gateway is down
    gateway_factory(port=port)
    assert reporter.flush(20)
    finished = await _finished(kafka_bootstrap, f"{topic_prefix}calls", sid, 1)
    assert len(finished) == 1 and finished[0].source == "ingest" and finished[0].input_tokens == 321
