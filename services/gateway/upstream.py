"""One pooled keep-alive client session per provider, with its credentials."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp

from services.gateway.config import GatewaySettings
from services.gateway.errors import ProviderName, ProviderNotConfigured


@dataclass(frozen=True, slots=True)
class Upstream:
    provider: ProviderName
    base_url: str
    session: aiohttp.ClientSession
    # Headers that replace the client's credentials; never logged.
    auth_headers: dict[str, str] = field(repr=False)
    # Headers added only when the client did not send them (anthropic-version).
    default_headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Upstreams:
    by_provider: dict[str, Upstream] = field(default_factory=dict)

    def get(self, provider: ProviderName) -> Upstream:
        up = self.by_provider.get(provider)
        if up is None:
            raise ProviderNotConfigured(f"the gateway has no {provider} API key configured")
        return up

    async def close(self) -> None:
        for up in self.by_provider.values():
            await up.session.close()


def _session(settings: GatewaySettings) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=settings.upstream_pool_size, keepalive_timeout=60, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=settings.upstream_connect_timeout_s, sock_read=settings.upstream_read_timeout_s
    )
    # Bodies pass through as they come (we ask for identity encoding to read usage).
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
    )


def build_upstreams(settings: GatewaySettings) -> Upstreams:
    ups = Upstreams()
    if settings.openai_api_key is not None:
        ups.by_provider["openai"] = Upstream(
            "openai",
            settings.openai_base_url.rstrip("/"),
            _session(settings),
            {"Authorization": f"Bearer {settings.openai_api_key.get_secret_value()}"},
        )
    if settings.anthropic_api_key is not None:
        ups.by_provider["anthropic"] = Upstream(
            "anthropic",
            settings.anthropic_base_url.rstrip("/"),
            _session(settings),
            {"x-api-key": settings.anthropic_api_key.get_secret_value()},
            {"anthropic-version": settings.anthropic_version},
        )
    return ups
