"""The column order of the tables both stores write (PostgreSQL and ClickHouse share it).

Each store builds its rows in this order with its own value encodings.
"""

from __future__ import annotations

CALL_COLUMNS = (
    "call_id",
    "ts",
    "event_id",
    "tenant",
    "project",
    "team",
    "session_id",
    "iteration",
    "provider",
    "model",
    "endpoint",
    "streamed",
    "status_code",
    "outcome",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_usd",
    "price_known",
    "reserved_usd",
    "started_at",
    "latency_ms",
    "ttft_ms",
    "source",
    "gateway_id",
)
ALERT_COLUMNS = (
    "alert_id",
    "event_id",
    "ts",
    "tenant",
    "session_id",
    "project",
    "team",
    "detector",
    "severity",
    "message",
    "evidence",
    "spent_usd",
    "budget_usd",
)
FINDING_COLUMNS = (
    "finding_id",
    "event_id",
    "ts",
    "tenant",
    "session_id",
    "call_id",
    "location",
    "message_index",
    "finding_type",
    "count",
    "severity",
    "preview",
)
