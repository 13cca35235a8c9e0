"""The sink's settings (``AGENTWATCH_*``), built once at start and passed down."""

from __future__ import annotations

from pydantic import Field

from services.common.config import StoreSettings


class SinkSettings(StoreSettings):
    # A batch is written when it holds this many rows, or when the oldest row waited this long.
    batch_rows: int = Field(5000, ge=1, le=1_000_000)
    batch_ms: int = Field(500, ge=1, le=600_000)
    # Which stores this process feeds; each has its own consumer group.
    stores: tuple[str, ...] = ("postgres", "clickhouse")
    group_prefix: str = "agentwatch-sink-"
    # Kafka fetch sizes: a batch of thousands of small events in a few round trips.
    fetch_max_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    partition_fetch_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    retry_initial_s: float = Field(0.2, gt=0)
    retry_max_s: float = Field(5.0, gt=0)
    retention_interval_s: float = Field(3600.0, gt=0)
    # Days of llm_calls partitions created ahead of today, so inserts never wait on DDL.
    partitions_ahead_days: int = Field(3, ge=0, le=60)
    # Payload bodies longer than this are cut (and flagged truncated) before storage.
    payload_max_chars: int = Field(65_536, ge=0)
    store_payloads: bool = True
    sink_host: str = "127.0.0.1"
    sink_port: int = Field(8090, ge=0, le=65535)
    clickhouse_database: str = "agentwatch"
    clickhouse_ttl_days: int = Field(365, ge=1)
    pg_pool_max: int = Field(4, ge=1)
