"""``agentwatch gateway``: serve the gateway on uvloop."""

from __future__ import annotations

import argparse
import logging

import uvloop
from aiohttp import web

from services.gateway.app import create_app
from services.gateway.config import GatewaySettings

log = logging.getLogger(__name__)


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
