"""The sink's Prometheus metrics (``GET /metrics``), read from each consumer's stats when scraped."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from services.sink.consumer import StoreConsumer

_COUNTERS = (
    ("records", "agentwatch_sink_records", "Kafka records read"),
    ("bad_records", "agentwatch_sink_undecodable_records", "Records that did not decode as an event"),
    ("rejected_events", "agentwatch_sink_rejected_events", "Events the store refused for their data"),
    ("dead_letters", "agentwatch_sink_dead_letters", "Rows added to sink_dead_letters"),
    ("rows_written", "agentwatch_sink_rows_written", "Rows handed to the store in written batches"),
    ("batches", "agentwatch_sink_batches", "Batches written and committed"),
    ("retries", "agentwatch_sink_write_retries", "Failed writes retried with backoff"),
)


class _SinkCollector(Collector):
    def __init__(self, consumers: Mapping[str, StoreConsumer]) -> None:
        self._consumers = consumers

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        for attr, name, doc in _COUNTERS:
            family = CounterMetricFamily(name, doc, labels=["store"])
            for store, consumer in self._consumers.items():
                family.add_metric([store], getattr(consumer.stats, attr))
            yield family
        down = GaugeMetricFamily("agentwatch_sink_store_down", "1 while writes to the store fail", labels=["store"])
        for store, consumer in self._consumers.items():
            down.add_metric([store], int(consumer.stats.store_down))
        yield down


def registry_for(consumers: Mapping[str, StoreConsumer]) -> CollectorRegistry:
    """A registry of this app's own (no process-wide default registry)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SinkCollector(consumers))
    return registry
