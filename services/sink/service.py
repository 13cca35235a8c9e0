"""``agentwatch sink``: run the consumers and the loopback HTTP side until SIGTERM / SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal

from aiohttp import web

from services.sink.app import create_app
from services.sink.settings import SinkSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stores",
        default=None,
        help="comma-separated stores to feed (postgres,clickhouse); default AGENTWATCH_STORES or both",
    )


def freeze_startup_objects() -> None:
    """Move what exists now (modules, the app, clients: ~100,000 objects) out of the cyclic
    GC's reach. They live as long as the process, yet every full collection walked them all:
    about 1 s of the event loop's time per 200,000 events (bench/RESULTS.md)."""
    gc.freeze()


async def serve(settings: SinkSettings) -> None:
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    freeze_startup_objects()
    try:
        site = web.TCPSite(runner, settings.sink_host, settings.sink_port)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def run(args: argparse.Namespace) -> int:
    settings = SinkSettings()
    if args.stores:
        settings = settings.model_copy(update={"stores": tuple(s.strip() for s in args.stores.split(",") if s.strip())})
    asyncio.run(serve(settings))
    return 0
