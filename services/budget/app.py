"""The Faust app factory: one agent folds the calls and controls topics into the sessions table.

Both topics are keyed ``tenant/session_id`` with the same partition count, so partition N of
each belongs to the same worker, and a table write goes to changelog partition N: one
writer per session. Table values are ``SessionState`` bytes, so gateways read the changelog
without Faust.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from services.budget.settings import BudgetSettings
from services.budget.transport import ShortFetchApp
from services.common.events import (
    CallFinished,
    CallStarted,
    Control,
    EventDecodeError,
    ReservationDecision,
    ReservationRequest,
    decode,
    encode,
    session_key,
)
from services.common.session_state import (
    SESSIONS_TABLE,
    SessionStateDecodeError,
    budget_app_id,
    changelog_topic,
    decode_state,
    encode_state,
    fold,
    reserve,
)
from services.common.topics import Topics

log = logging.getLogger(__name__)


def create_app(settings: BudgetSettings) -> faust.App:
    topics = Topics.from_settings(settings)
    app = ShortFetchApp(
        budget_app_id(settings.topic_prefix),
        fetch_max_wait_ms=settings.budget_fetch_max_wait_ms,
        broker=[f"kafka://{h.strip()}" for h in settings.kafka_bootstrap_servers.split(",")],
        store="memory://",
        datadir=str(settings.budget_data_dir),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        web_port=settings.budget_web_port,
        web_host=settings.budget_web_host,
        web_bind=settings.budget_web_host,
        broker_commit_interval=settings.budget_commit_interval_s,
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=0,
        # Also the app defaults: the conductor decodes with them, whatever the topic's schema says.
        key_serializer="raw",
        value_serializer="raw",
        # Changelog writes batched over a few ms: per-request costs, not the fold, set the
        # worker's throughput (see bench/RESULTS.md).
        producer_linger=settings.budget_producer_linger_ms / 1000,
        broker_session_timeout=settings.budget_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.budget_session_timeout_s / 3),
    )
    table = app.Table(
        SESSIONS_TABLE,
        default=None,
        partitions=settings.topic_partitions,
        # bytes types make Faust pick the raw codec for the changelog (it falls back to json).
        key_type=bytes,
        value_type=bytes,
        schema=_raw_schema(),
    )
    if table.changelog_topic.get_topic_name() != changelog_topic(settings.topic_prefix):
        raise RuntimeError("the sessions changelog name differs from the one gateways replicate")
    # Reservation requests share the sessions' key and partition count, so the worker that
    # owns a session's partition is the only one deciding on it (strict mode).
    source = app.topic(topics.calls, topics.controls, topics.reservations, schema=_raw_schema())
    decisions = app.topic(topics.reservation_decisions, schema=_raw_schema())

    @app.agent(source, name="fold-sessions")
    async def fold_sessions(stream: Any) -> None:
        async for event in stream.events():
            decision = apply(table, event.value)
            if decision is not None:
                await decisions.send(key=decision.gateway_id.encode(), value=encode(decision))

    return app


def _raw_schema() -> Any:
    # One instance per user: Faust fills a table's schema in place with its own defaults.
    return faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


def apply(table: Any, raw: bytes) -> ReservationDecision | None:
    """Fold one raw event into the table; undecodable or foreign events are skipped, logged.

    Returns the decision to send back when the event is a strict-mode reservation request.
    """
    try:
        event = decode(raw)
    except EventDecodeError as exc:
        log.warning("skipping an undecodable event: %s", exc)
        return None
    if not isinstance(event, CallStarted | CallFinished | Control | ReservationRequest) or not event.session_id:
        return None
    key = session_key(event.tenant, event.session_id)
    current = table.get(key)
    try:
        state = decode_state(current) if current is not None else None
    except SessionStateDecodeError as exc:
        log.error("session %r has undecodable state, starting it afresh: %s", key, exc)
        state = None
    if isinstance(event, ReservationRequest):
        new_state, decision = reserve(state, event)
        if decision.granted:
            table[key] = encode_state(new_state)
        return decision
    new_state, changed = fold(state, event)
    if changed:
        table[key] = encode_state(new_state)
    return None
