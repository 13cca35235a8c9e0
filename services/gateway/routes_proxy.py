"""The proxy routes: ``ANY /v1/proxy/openai/{path}`` and ``ANY /v1/proxy/anthropic/{path}``."""

from __future__ import annotations

from aiohttp import web

from services.gateway.proxy import Proxy


def setup_routes(app: web.Application) -> None:
    app.router.add_route("*", "/v1/proxy/openai/{path:.*}", Proxy("openai").handle)
    app.router.add_route("*", "/v1/proxy/anthropic/{path:.*}", Proxy("anthropic").handle)
