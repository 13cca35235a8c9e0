"""The admission seam: a refusing implementation stops the call before anything goes
upstream, with a provider-shaped 402, and is told about the outcome through settle()."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from services.common.events import CallFinished
from services.gateway.admission import Admitted, CallContext
from services.gateway.app import create_app
from services.gateway.config import GatewaySettings
from services.gateway.errors import CallRefused
from tests.fakes.upstream import STATE, create_fake_app


class RefuseSessionX:
    def __init__(self) -> None:
        self.admitted: list[CallContext] = []
        self.settled: list[CallFinished] = []

    async def admit(self, call: CallContext) -> Admitted:
        if call.session.session_id == "x":
            raise CallRefused("session x is over budget", "budget_exceeded")
        self.admitted.append(call)
        return Admitted(spent_usd=None, remaining_usd=None)

    async def settle(self, call: CallContext, finished: CallFinished) -> None:
        self.settled.append(finished)


async def test_refusal_never_reaches_upstream(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str) -> None:
    fake_app = create_fake_app()
    async with TestServer(fake_app, host="127.0.0.1") as fake:
        settings = GatewaySettings(
            kafka_bootstrap_servers=kafka_bootstrap,
            topic_prefix=topic_prefix,
            openai_api_key="sk-o",
            anthropic_api_key="sk-a",
            tenant_token_map={"tok": "t1"},
            openai_base_url=str(fake.make_url("/v1")),
            anthropic_base_url=str(fake.make_url("/v1")),
            spool_dir=tmp_path / "spool",
        )
        admission = RefuseSessionX()
        async with TestServer(create_app(settings, admission), host="127.0.0.1") as gw, aiohttp.ClientSession() as http:
            chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
            h = {"Authorization": "Bearer tok", "X-AgentWatch-Session-Id": "x"}
            async with http.post(gw.make_url("/v1/proxy/openai/chat/completions"), json=chat, headers=h) as r:
                assert r.status == 402
                body = await r.json()
                assert body["error"]["code"] == "budget_exceeded"
                assert body["error"]["type"] == "budget_exceeded"
                assert r.headers["X-AgentWatch-Call-Id"]
            ah = {"x-api-key": "tok", "X-AgentWatch-Session-Id": "x"}
            msg = {"model": "claude-3-5-haiku-20241022", "max_tokens": 5, "messages": chat["messages"]}
            async with http.post(gw.make_url("/v1/proxy/anthropic/v1/messages"), json=msg, headers=ah) as r:
                assert r.status == 402
                assert (await r.json())["error"]["type"] == "budget_exceeded"
            assert len(fake_app[STATE].requests) == 0

            h["X-AgentWatch-Session-Id"] = "y"
            url = str(gw.make_url("/v1/proxy/openai/chat/completions")) + "?api-version=2024-01-01&x=a%20b"
            async with http.post(url, json=chat, headers=h) as r:
                assert r.status == 200
            assert len(fake_app[STATE].requests) == 1
            # The query string passes through as it came.
            assert fake_app[STATE].requests[0]["query"] == "api-version=2024-01-01&x=a%20b"
            assert [c.session.session_id for c in admission.admitted] == ["y"]
            assert [(f.session_id, f.outcome) for f in admission.settled] == [
                ("x", "refused"),
                ("x", "refused"),
                ("y", "ok"),
            ]
            assert admission.settled[-1].input_tokens > 0
