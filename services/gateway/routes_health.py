"""Liveness, readiness (broker state) and Prometheus metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.gateway import keys


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready while it can serve calls; a broker outage is reported, not fatal (events spool)."""
    emitter = request.app[keys.EMITTER]
    body = {
        "status": "ready",
        "broker": "up" if emitter.broker_up else "down",
        "spooled_bytes": emitter.spool_size,
        "queued_events": emitter.pending,
    }
    return web.json_response(body)


async def metrics(request: web.Request) -> web.Response:
    data = generate_latest(request.app[keys.METRICS].registry)
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
