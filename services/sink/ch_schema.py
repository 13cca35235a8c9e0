"""The ClickHouse schema: ``llm_calls``, ``alerts``, ``risk_findings`` and the rollups.

``llm_calls`` is a ReplacingMergeTree as a backstop only: the writer filters out call ids
already present before inserting (one writer per Kafka partition makes that safe), because
materialized views see every insert and a duplicate that reached them would be summed twice.
"""

from __future__ import annotations


def schema_statements(db: str, ttl_days: int) -> list[str]:
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"""CREATE TABLE IF NOT EXISTS {db}.llm_calls (
            call_id String,
            ts DateTime64(6, 'UTC'),
            event_id String,
            tenant LowCardinality(String),
            project LowCardinality(String),
            team LowCardinality(String),
            session_id String,
            iteration Nullable(Int32),
            provider LowCardinality(String),
            model LowCardinality(String),
            endpoint LowCardinality(String),
            streamed Bool,
            status_code UInt16,
            outcome LowCardinality(String),
            prompt_tokens UInt64,
            completion_tokens UInt64,
            cached_tokens UInt64,
            reasoning_tokens UInt64,
            cost_usd Nullable(Decimal(20, 9)),
            price_known Bool,
            reserved_usd Decimal(20, 9),
            started_at Nullable(DateTime64(6, 'UTC')),
            latency_ms Float64,
            ttft_ms Nullable(Float64),
            source LowCardinality(String),
            gateway_id String,
            INDEX call_id_bf call_id TYPE bloom_filter GRANULARITY 4
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMM(ts)
        ORDER BY (toDate(ts), tenant, call_id)
        TTL toDateTime(ts) + INTERVAL {ttl_days} DAY""",
        f"""CREATE TABLE IF NOT EXISTS {db}.spend_daily (
            day Date,
            tenant LowCardinality(String),
            project LowCardinality(String),
            team LowCardinality(String),
            provider LowCardinality(String),
            model LowCardinality(String),
            calls UInt64,
            error_calls UInt64,
            unpriced_calls UInt64,
            prompt_tokens UInt64,
            completion_tokens UInt64,
            cached_tokens UInt64,
            reasoning_tokens UInt64,
            cost_usd Decimal(38, 9)
        ) ENGINE = SummingMergeTree
        PARTITION BY toYYYYMM(day)
        ORDER BY (day, tenant, project, team, provider, model)
        TTL day + INTERVAL {ttl_days} DAY""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.spend_daily_mv TO {db}.spend_daily AS
        SELECT toDate(ts) AS day, tenant, project, team, provider, model,
               count() AS calls,
               countIf(status_code >= 400) AS error_calls,
               countIf(NOT priced) AS unpriced_calls,
               sum(prompt_tokens) AS prompt_tokens,
               sum(completion_tokens) AS completion_tokens,
               sum(cached_tokens) AS cached_tokens,
               sum(reasoning_tokens) AS reasoning_tokens,
               toDecimal128(sum(known_cost_usd), 9) AS cost_usd
        FROM (SELECT *, ifNull(cost_usd, toDecimal64(0, 9)) AS known_cost_usd, cost_usd IS NOT NULL AS priced
              FROM {db}.llm_calls)
        GROUP BY day, tenant, project, team, provider, model""",
        f"""CREATE TABLE IF NOT EXISTS {db}.session_totals (
            tenant LowCardinality(String),
            session_id String,
            project SimpleAggregateFunction(anyLast, String),
            team SimpleAggregateFunction(anyLast, String),
            calls SimpleAggregateFunction(sum, UInt64),
            max_iteration SimpleAggregateFunction(max, Int64),
            prompt_tokens SimpleAggregateFunction(sum, UInt64),
            completion_tokens SimpleAggregateFunction(sum, UInt64),
            cost_usd SimpleAggregateFunction(sum, Decimal(38, 9)),
            first_ts SimpleAggregateFunction(min, DateTime64(6, 'UTC')),
            last_ts SimpleAggregateFunction(max, DateTime64(6, 'UTC'))
        ) ENGINE = AggregatingMergeTree
        ORDER BY (tenant, session_id)""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.session_totals_mv TO {db}.session_totals AS
        SELECT tenant, session_id,
               anyLast(project_name) AS project,
               anyLast(team_name) AS team,
               count() AS calls,
               max(toInt64(ifNull(iteration, 0))) AS max_iteration,
               sum(prompt_tokens) AS prompt_tokens,
               sum(completion_tokens) AS completion_tokens,
               toDecimal128(sum(known_cost_usd), 9) AS cost_usd,
               min(ts) AS first_ts,
               max(ts) AS last_ts
        FROM (SELECT *, ifNull(cost_usd, toDecimal64(0, 9)) AS known_cost_usd,
                     toString(project) AS project_name, toString(team) AS team_name
              FROM {db}.llm_calls)
        WHERE session_id != ''
        GROUP BY tenant, session_id""",
        f"""CREATE TABLE IF NOT EXISTS {db}.alerts (
            alert_id String,
            event_id String,
            ts DateTime64(6, 'UTC'),
            tenant LowCardinality(String),
            session_id String,
            project LowCardinality(String),
            team LowCardinality(String),
            detector LowCardinality(String),
            severity LowCardinality(String),
            message String,
            evidence String,
            spent_usd Nullable(Decimal(20, 9)),
            budget_usd Nullable(Decimal(20, 9))
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMM(ts)
        ORDER BY (toDate(ts), tenant, alert_id)
        TTL toDateTime(ts) + INTERVAL {ttl_days} DAY""",
        f"""CREATE TABLE IF NOT EXISTS {db}.risk_findings (
            finding_id String,
            event_id String,
            ts DateTime64(6, 'UTC'),
            tenant LowCardinality(String),
            session_id String,
            call_id String,
            location LowCardinality(String),
            message_index Nullable(Int32),
            finding_type LowCardinality(String),
            count UInt32,
            severity LowCardinality(String),
            preview String
        ) ENGINE = ReplacingMergeTree
        PARTITION BY toYYYYMM(ts)
        ORDER BY (toDate(ts), tenant, finding_id)
        TTL toDateTime(ts) + INTERVAL {ttl_days} DAY""",
    ]
