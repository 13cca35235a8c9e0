"""``agentwatch gateway``: serve the gateway on uvloop."""

from __future__ import annotations

import argparse
import gc
import logging

import uvloop
from aiohttp import web

from services.gateway.app import create_app
from services.gateway.config import GatewaySettings

log = logging.getLogger(__name__)

_GC_GEN0_THRESHOLD = 20_000


def tune_gc() -> None:
    """Everything built so far (modules, settings, the app) lives as long as the process: keep
    it out of the collector's scans, and collect the young generation less often, since a
    call allocates hundreds of short-lived containers and almost never a cycle. This keeps
    collector pauses out of the call latency's tail."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(_GC_GEN0_THRESHOLD, 50, 100)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="listen address (default AGENTWATCH_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default AGENTWATCH_PORT or 8080)")


def run(args: argparse.Namespace) -> int:
    settings = GatewaySettings()
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        settings = settings.model_copy(update=overrides)
    logging.getLogger().setLevel(settings.log_level.upper())
    app = create_app(settings)
    tune_gc()
    log.info("gateway listening on http://%s:%d", settings.host, settings.port)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        loop=uvloop.new_event_loop(),
        access_log=None,
        print=None,
        handler_cancellation=True,
        shutdown_timeout=10.0,
    )
    return 0
