"""The budget worker's Kafka consumer is built with the configured fetch wait, not Faust's 1.5 s."""

from __future__ import annotations

from typing import Any

from services.budget.app import create_app
from services.budget.settings import BudgetSettings


async def test_worker_consumer_uses_configured_fetch_wait(tmp_path: Any) -> None:
    settings = BudgetSettings(
        kafka_bootstrap_servers="127.0.0.1:1", budget_data_dir=tmp_path, budget_fetch_max_wait_ms=7
    )
    app = create_app(settings)
    thread = app.consumer._thread  # type: ignore[attr-defined]
    consumer = thread._create_worker_consumer(app.transport)
    try:
        assert consumer._fetch_max_wait_ms == 7
        assert consumer._group_id == app.conf.id  # still Faust's worker consumer (group = app id)
    finally:
        await consumer.stop()


async def test_default_fetch_wait_is_short(tmp_path: Any) -> None:
    app = create_app(BudgetSettings(kafka_bootstrap_servers="127.0.0.1:1", budget_data_dir=tmp_path))
    consumer = app.consumer._thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
    try:
        assert consumer._fetch_max_wait_ms <= 50
    finally:
        await consumer.stop()
