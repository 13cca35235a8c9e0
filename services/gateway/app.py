"""The gateway's aiohttp application factory."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator

from aiohttp import web

from services.common.topics import Topics
from services.gateway import budget_ctx, keys, routes_budget, routes_health, routes_ingest, routes_proxy
from services.gateway.admission import Admission, IterationCounter
from services.gateway.auth import TokenAuthenticator
from services.gateway.config import GatewaySettings
from services.gateway.emitter import Emitter
from services.gateway.metrics import GatewayMetrics
from services.gateway.spool import Spool
from services.gateway.upstream import build_upstreams

# Each route group registers itself; budget-check, admin and ingest add their module here.
ROUTE_GROUPS = (
    routes_health.setup_routes,
    routes_proxy.setup_routes,
    routes_ingest.setup_routes,
    routes_budget.setup_routes,
)


async def _emitter_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    topics = app[keys.TOPICS]
    spool = Spool(settings.spool_dir, settings.spool_max_bytes)
    emitter = Emitter(
        settings.kafka_bootstrap_servers,
        spool,
        app[keys.METRICS],
        queue_size=settings.emit_queue_size,
        send_timeout_s=settings.kafka_send_timeout_s,
        topics_to_ensure=(topics.calls, topics.payloads),
        topic_partitions=settings.topic_partitions,
        topic_replication=settings.topic_replication,
    )
    app[keys.EMITTER] = emitter
    await emitter.start()
    yield
    await emitter.stop()


async def _upstreams_ctx(app: web.Application) -> AsyncIterator[None]:
    upstreams = build_upstreams(app[keys.SETTINGS])
    app[keys.UPSTREAMS] = upstreams
    yield
    await upstreams.close()


def create_app(settings: GatewaySettings, admission: Admission | None = None) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[keys.SETTINGS] = settings
    app[keys.TOPICS] = Topics.from_settings(settings)
    app[keys.METRICS] = GatewayMetrics.create()
    app[keys.AUTH] = TokenAuthenticator(settings.tenant_token_map)
    app[keys.ITERATIONS] = IterationCounter()
    app[keys.GATEWAY_ID] = settings.gateway_id or f"{socket.gethostname()}:{os.getpid()}"
    budget = budget_ctx.install(app, settings)
    inner: Admission = admission or budget
    if any(p.secret_guard for p in settings.tenant_policies.values()):
        # Loaded only when a tenant turns the guard on: the scanner stays off everyone else's path.
        from services.gateway.secret_guard import SecretGuardAdmission

        inner = SecretGuardAdmission(inner, settings)
    app[keys.ADMISSION] = inner
    # The emitter starts first and stops last, so calls finishing during shutdown are recorded.
    app.cleanup_ctx.append(_emitter_ctx)
    app.cleanup_ctx.append(_upstreams_ctx)
    app.cleanup_ctx.append(budget_ctx.budget_ctx)
    for setup in ROUTE_GROUPS:
        setup(app)
    return app
