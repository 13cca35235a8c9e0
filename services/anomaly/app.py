"""The detection worker: a Faust app folding the calls topic into per-session windows.

The table is keyed like the calls topic (``tenant/session_id``) and has as many partitions,
so each session's window lives on the worker that owns its partition, and the calls topic
and the changelog are co-partitioned. Values are msgspec-encoded bytes (see ``state``).

What happens when the next hop is down: the worker only acknowledges a calls event after its
alerts and controls are acknowledged by the broker (``await`` on the send future), so a worker
that dies or loses the broker re-reads the event; the table update and the cooldown it
records may then be replayed too, which at worst repeats one alert (at-least-once).
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from services.anomaly.engine import step
from services.anomaly.errors import StateDecodeError
from services.anomaly.settings import AnomalySettings
from services.anomaly.state import SessionState, decode_state, encode_state
from services.common.events import EventDecodeError, decode, encode
from services.common.topics import Topics

log = logging.getLogger("agentwatch.anomaly")

TABLE_NAME = "session-windows"


def create_app(settings: AnomalySettings) -> faust.App:
    topics = Topics.from_settings(settings)
    app = faust.App(
        settings.anomaly_app_id,
        broker=f"kafka://{settings.kafka_bootstrap_servers}",
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        web_host=settings.anomaly_web_host,
        web_port=settings.anomaly_web_port,
        consumer_auto_offset_reset="earliest",
        # Raw bytes end to end: events are decoded by services.common.events, table values by state.
        key_serializer="raw",
        value_serializer="raw",
    )
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    calls = app.topic(topics.calls, partitions=settings.topic_partitions, **raw)
    alerts = app.topic(topics.alerts, **raw)
    controls = app.topic(topics.controls, **raw)
    windows = app.Table(
        TABLE_NAME, default=None, partitions=settings.topic_partitions, key_type=bytes, value_type=bytes
    )

    @app.agent(calls)
    async def detect(stream: Any) -> None:
        async for key, value in stream.items():
            await _handle(key, value)

    async def _handle(key: bytes | None, value: bytes | None) -> None:
        if key is None or value is None:
            return
        try:
            event = decode(value)
        except EventDecodeError as exc:
            log.warning("skipping undecodable event on %s: %s", topics.calls, exc)
            return
        stored = windows.get(key)
        state: SessionState | None = None
        if stored is not None:
            try:
                state = decode_state(stored)
            except StateDecodeError as exc:
                log.error("discarding undecodable window for %r: %s", key, exc)
        result = step(state, event, settings.policy(event.tenant))
        if not result.changed:
            return
        windows[key] = encode_state(result.state)
        for alert in result.alerts:
            log.info("alert %s %s session=%s/%s", alert.alert_id, alert.detector, alert.tenant, alert.session_id)
            await (await alerts.send(key=key, value=encode(alert), force=True))
        for control in result.controls:
            log.info("pausing session %s/%s", control.tenant, control.session_id)
            await (await controls.send(key=key, value=encode(control), force=True))

    return app
