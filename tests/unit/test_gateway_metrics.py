"""The gateway's cached metric children count into the registered families."""

from __future__ import annotations

from services.gateway.metrics import GatewayMetrics


def test_cached_children_count_into_the_registry() -> None:
    m = GatewayMetrics.create()
    for _ in range(3):
        m.count_request("openai", 200)
    m.count_request("openai", 502)
    m.count_upstream("anthropic", 429)
    m.observe_latency("openai", 0.004)
    m.observe_latency("openai", 0.2)
    get = m.registry.get_sample_value
    assert get("agentwatch_gateway_requests_total", {"provider": "openai", "status": "200"}) == 3
    assert get("agentwatch_gateway_requests_total", {"provider": "openai", "status": "502"}) == 1
    assert get("agentwatch_gateway_upstream_responses_total", {"provider": "anthropic", "status": "429"}) == 1
    assert get("agentwatch_gateway_request_seconds_count", {"provider": "openai"}) == 2
    assert get("agentwatch_gateway_request_seconds_bucket", {"provider": "openai", "le": "0.005"}) == 1
