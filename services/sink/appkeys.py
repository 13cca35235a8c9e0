"""Typed keys of the sink's aiohttp application."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from services.sink.ch_store import ClickHouseStore
from services.sink.consumer import StoreConsumer
from services.sink.settings import SinkSettings

SETTINGS = web.AppKey("settings", SinkSettings)
CLICKHOUSE = web.AppKey("clickhouse", ClickHouseStore)
CONSUMERS = web.AppKey("consumers", dict[str, StoreConsumer])
METRICS = web.AppKey("metrics", CollectorRegistry)
