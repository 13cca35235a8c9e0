"""Payload capture: on request, bodies go to the payloads topic, cut at the configured size."""

from __future__ import annotations

import uuid

import aiohttp

from services.common.events import Event, PayloadCaptured
from tests.e2e.kafka_events import read_events
from tests.fixtures import ANTHROPIC_KEY, OPENAI_KEY, GatewayFactory


async def test_payloads_captured_and_truncated(
    gateway_factory: GatewayFactory, kafka_bootstrap: str, topic_prefix: str
) -> None:
    gw = gateway_factory(AGENTWATCH_CAPTURE_PAYLOADS="true", AGENTWATCH_CAPTURE_MAX_BYTES="120")
    sids = [f"p-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    async with aiohttp.ClientSession() as http:
        for sid, content in zip(sids, ("short", "long " * 100), strict=True):
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}
            headers = {"Authorization": "Bearer tok-alpha", "X-AgentWatch-Session-Id": sid}
            async with http.post(f"{gw.url}/v1/proxy/openai/chat/completions", json=body, headers=headers) as r:
                assert r.status == 200

    def done(evs: list[Event]) -> bool:
        return set(sids) <= {e.session_id for e in evs if isinstance(e, PayloadCaptured)}

    events = await read_events(kafka_bootstrap, f"{topic_prefix}payloads", done)
    by_sid = {e.session_id: e for e in events if isinstance(e, PayloadCaptured)}
    short, long = by_sid[sids[0]], by_sid[sids[1]]
    assert '"short"' in short.request_body
    assert short.response_body is not None and short.response_body.startswith('{"id": "chatcmpl-')
    assert long.truncated and len(long.request_body) == 120
    for e in (short, long):
        assert e.tenant == "alpha" and e.endpoint == "chat"
        assert OPENAI_KEY not in e.request_body + (e.response_body or "")
        assert ANTHROPIC_KEY not in e.request_body
