"""The inline secret guard wired into the gateway: a guarded tenant's request carrying a secret
is refused with a provider-shaped 400 and never reaches upstream; other tenants pass."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from services.common.config import TenantPolicy
from services.gateway.app import create_app
from services.gateway.config import GatewaySettings
from tests.fakes.upstream import STATE, create_fake_app

AWS = "AKIAZ3MQX7RT2WLE5YQN"


async def test_guard_refuses_secrets_for_guarded_tenant_only(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    fake_app = create_fake_app()
    async with TestServer(fake_app, host="127.0.0.1") as fake:
        settings = GatewaySettings(
            kafka_bootstrap_servers=kafka_bootstrap,
            topic_prefix=topic_prefix,
            openai_api_key="sk-o",
            anthropic_api_key="sk-a",
            tenant_token_map={"tok-g": "guarded", "tok-o": "open"},
            tenant_policies={"guarded": TenantPolicy(secret_guard=True)},
            openai_base_url=str(fake.make_url("/v1")),
            anthropic_base_url=str(fake.make_url("/v1")),
            spool_dir=tmp_path / "spool",
        )
        leaky = [{"role": "user", "content": f"deploy with {AWS}"}]
        async with TestServer(create_app(settings), host="127.0.0.1") as gw, aiohttp.ClientSession() as http:
            openai_url = gw.make_url("/v1/proxy/openai/chat/completions")
            chat = {"model": "gpt-4o-mini", "messages": leaky}
            async with http.post(openai_url, json=chat, headers={"Authorization": "Bearer tok-g"}) as r:
                assert r.status == 400
                body = await r.json()
                assert body["error"]["code"] == "secret_detected"
                assert body["error"]["type"] == "invalid_request_error"
                assert "aws_access_key" in body["error"]["message"] and AWS not in await r.text()
            msg = {"model": "claude-3-5-haiku-20241022", "max_tokens": 5, "messages": leaky}
            anthropic_url = gw.make_url("/v1/proxy/anthropic/v1/messages")
            async with http.post(anthropic_url, json=msg, headers={"x-api-key": "tok-g"}) as r:
                assert r.status == 400
                body = await r.json()
                assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
            assert len(fake_app[STATE].requests) == 0

            clean = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
            async with http.post(openai_url, json=clean, headers={"Authorization": "Bearer tok-g"}) as r:
                assert r.status == 200
            # Guard off (the default) for the other tenant: the call goes through as before.
            async with http.post(openai_url, json=chat, headers={"Authorization": "Bearer tok-o"}) as r:
                assert r.status == 200
            assert len(fake_app[STATE].requests) == 2
