"""Prometheus metrics in a registry owned by one app (never the process-global default)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@dataclass(frozen=True, slots=True)
class GatewayMetrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    upstream_status: Counter
    events_sent: Counter
    events_spooled: Counter
    events_dropped: Counter
    spool_bytes: Gauge
    broker_up: Gauge

    @classmethod
    def create(cls) -> GatewayMetrics:
        r = CollectorRegistry(auto_describe=True)
        return cls(
            registry=r,
            requests=Counter(
                "agentwatch_gateway_requests",
                "Proxied requests by provider and status",
                ["provider", "status"],
                registry=r,
            ),
            latency=Histogram(
                "agentwatch_gateway_request_seconds",
                "Proxied request duration, upstream included",
                ["provider"],
                buckets=_LATENCY_BUCKETS,
                registry=r,
            ),
            upstream_status=Counter(
                "agentwatch_gateway_upstream_responses",
                "Upstream responses by status",
                ["provider", "status"],
                registry=r,
            ),
            events_sent=Counter("agentwatch_gateway_events_sent", "Events acknowledged by Kafka", registry=r),
            events_spooled=Counter(
                "agentwatch_gateway_events_spooled", "Events written to the on-disk spool", registry=r
            ),
            events_dropped=Counter(
                "agentwatch_gateway_events_dropped", "Events dropped because the spool was full", registry=r
            ),
            spool_bytes=Gauge("agentwatch_gateway_spool_bytes", "Bytes waiting in the on-disk spool", registry=r),
            broker_up=Gauge("agentwatch_gateway_broker_up", "1 when events go straight to Kafka", registry=r),
        )
