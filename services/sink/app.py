"""The sink's application: one cleanup context per resource (each store with its consumer,
the retention schedule), and the HTTP routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from services.common.topics import Topics, ensure_topics
from services.sink import http
from services.sink.appkeys import CLICKHOUSE, CONSUMERS, METRICS, SETTINGS
from services.sink.ch_store import ClickHouseStore
from services.sink.consumer import StoreConsumer
from services.sink.dead_letters import DeadLetterStore
from services.sink.errors import SinkError
from services.sink.metrics import registry_for
from services.sink.pg_store import PostgresStore
from services.sink.settings import SinkSettings
from services.sink.store import Store

log = logging.getLogger(__name__)


def topics_for(store: str, topics: Topics, settings: SinkSettings) -> list[str]:
    names = [topics.calls, topics.alerts, topics.risk_findings]
    if store == "postgres" and settings.store_payloads:
        names.append(topics.payloads_redacted)
    return names


async def _run_consumer(app: web.Application, store: Store) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    topics = topics_for(store.name, Topics.from_settings(settings), settings)
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        topics,
        partitions=settings.topic_partitions,
        replication=settings.topic_replication,
    )
    await store.open()
    dead_letters = DeadLetterStore(settings.database_url)
    consumer = StoreConsumer(store, settings, topics, f"{settings.group_prefix}{store.name}", dead_letters)
    app[CONSUMERS][store.name] = consumer
    task = asyncio.create_task(consumer.run(), name=f"sink-{store.name}")
    try:
        yield
    finally:
        consumer.stop()
        try:
            await asyncio.wait_for(task, timeout=30.0)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await dead_letters.close()
        await store.close()


async def _postgres_ctx(app: web.Application) -> AsyncIterator[None]:
    store = PostgresStore(app[SETTINGS])
    await store.open()
    retention = asyncio.create_task(_retention_loop(store, app[SETTINGS]), name="sink-retention")
    try:
        async for _ in _run_consumer(app, store):
            yield
    finally:
        retention.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await retention


async def _clickhouse_ctx(app: web.Application) -> AsyncIterator[None]:
    async for _ in _run_consumer(app, app[CLICKHOUSE]):
        yield


async def _retention_loop(store: PostgresStore, settings: SinkSettings) -> None:
    while True:
        try:
            await store.apply_retention()
            delay = settings.retention_interval_s
        except SinkError as exc:
            log.warning("retention skipped, retrying soon: %s", exc)
            delay = min(settings.retention_interval_s, 30.0)
        await asyncio.sleep(delay)


def create_app(settings: SinkSettings) -> web.Application:
    app = web.Application(client_max_size=http.MAX_SQL_BYTES * 2)
    app[SETTINGS] = settings
    app[CLICKHOUSE] = ClickHouseStore(settings)
    consumers: dict[str, StoreConsumer] = {}
    app[CONSUMERS] = consumers
    app[METRICS] = registry_for(consumers)
    if "postgres" in settings.stores:
        app.cleanup_ctx.append(_postgres_ctx)
    if "clickhouse" in settings.stores:
        app.cleanup_ctx.append(_clickhouse_ctx)
    app.router.add_get("/healthz", http.healthz)
    app.router.add_get("/metrics", http.metrics)
    app.router.add_get("/query", http.query)
    app.router.add_post("/query", http.query)
    return app
