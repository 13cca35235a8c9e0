from __future__ import annotations

from decimal import Decimal

import pytest

from services.common.config import CommonSettings, StoreSettings
from services.common.topics import Topics


def test_contract_variable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1234")
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@127.0.0.1:1/db")
    monkeypatch.setenv("CLICKHOUSE_URL", "chdb:///tmp/x")
    monkeypatch.setenv("AGENTWATCH_TOPIC_PREFIX", "prod.")
    monkeypatch.setenv("AGENTWATCH_RETENTION_DAYS", "7")
    s = StoreSettings()
    assert s.kafka_bootstrap_servers == "127.0.0.1:1234"
    assert s.database_url.endswith("/db")
    assert s.clickhouse_url == "chdb:///tmp/x"
    assert s.retention_days == 7
    assert Topics.from_settings(s).calls == "prod.calls"


def test_tenant_policies_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AGENTWATCH_TENANT_POLICIES",
        '{"acme": {"budget_mode": "strict", "default_budget_usd": "2.5", "detectors": {"growth_factor": 1.3}},'
        ' "*": {"on_unknown_state": "closed"}}',
    )
    s = CommonSettings()
    assert s.policy("acme").budget_mode == "strict"
    assert s.policy("acme").default_budget_usd == Decimal("2.5")
    assert s.policy("acme").detectors.growth_factor == 1.3
    assert s.policy("other").on_unknown_state == "closed"


def test_defaults_without_policies() -> None:
    s = CommonSettings(tenant_policies={})
    p = s.policy("anyone")
    assert p.budget_mode == "fast" and p.on_unknown_state == "open" and p.loop_policy == "alert"
    assert s.topic_partitions == 12


def test_topics_are_prefixed_and_distinct() -> None:
    t = Topics.with_prefix("x.")
    assert all(n.startswith("x.") for n in t.all())
    assert len(set(t.all())) == len(t.all())
