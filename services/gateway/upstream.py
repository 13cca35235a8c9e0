"""One pooled keep-alive HTTP client per provider, with its credentials."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.gateway.config import GatewaySettings
from services.gateway.errors import ProviderName, ProviderNotConfigured
from services.gateway.http_client import HTTPClient


@dataclass(frozen=True, slots=True)
class Upstream:
    provider: ProviderName
    client: HTTPClient
    # Headers that replace the client's credentials; never logged.
    auth_headers: tuple[tuple[str, str], ...] = field(repr=False)
    # Headers added only when the client did not send them (anthropic-version), lower-case names.
    default_headers: tuple[tuple[str, str], ...] = ()


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
            await up.client.close()


def _client(settings: GatewaySettings, base_url: str) -> HTTPClient:
    return HTTPClient(
        base_url,
        pool_size=settings.upstream_pool_size,
        connect_timeout_s=settings.upstream_connect_timeout_s,
        read_timeout_s=settings.upstream_read_timeout_s,
    )


def _checked(name: str, value: str) -> tuple[str, str]:
    # A key read from a file often ends with a newline; sent as is it would split the header.
    if "\r" in value or "\n" in value:
        raise ValueError(f"the configured value for the upstream header {name} contains a line break")
    return name, value


def build_upstreams(settings: GatewaySettings) -> Upstreams:
    ups = Upstreams()
    if settings.openai_api_key is not None:
        ups.by_provider["openai"] = Upstream(
            "openai",
            _client(settings, settings.openai_base_url),
            (_checked("Authorization", f"Bearer {settings.openai_api_key.get_secret_value()}"),),
        )
    if settings.anthropic_api_key is not None:
        ups.by_provider["anthropic"] = Upstream(
            "anthropic",
            _client(settings, settings.anthropic_base_url),
            (_checked("x-api-key", settings.anthropic_api_key.get_secret_value()),),
            (_checked("anthropic-version", settings.anthropic_version),),
        )
    return ups
