"""Prometheus metrics in a registry owned by one app (never the process-global default)."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    # Label children by label values, looked up once: prometheus_client's labels() validates
    # and takes a lock on every call, more than twice the cost of the increment itself.
    _requests_by: dict[tuple[str, int], Counter] = field(default_factory=dict)
    _upstream_by: dict[tuple[str, int], Counter] = field(default_factory=dict)
    _latency_by: dict[str, Histogram] = field(default_factory=dict)

    def count_request(self, provider: str, status: int) -> None:
        child = self._requests_by.get((provider, status))
        if child is None:
            child = self._requests_by[provider, status] = self.requests.labels(provider, str(status))
        child.inc()

    def count_upstream(self, provider: str, status: int) -> None:
        child = self._upstream_by.get((provider, status))
        if child is None:
            child = self._upstream_by[provider, status] = self.upstream_status.labels(provider, str(status))
        child.inc()

    def observe_latency(self, provider: str, seconds: float) -> None:
        child = self._latency_by.get(provider)
        if child is None:
            child = self._latency_by[provider] = self.latency.labels(provider)
        child.observe(seconds)

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
