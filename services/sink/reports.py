"""The ready-made analytics queries (ClickHouse SQL), run by ``agentwatch report NAME``.

``docs/analytics.md`` lists each of them; a test runs every one against the real schema and
checks the doc and this module agree. Parameters use clickhouse-connect's ``%(name)s``
binding (values are quoted by the client, never pasted in).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Report:
    name: str
    description: str
    sql: str
    params: tuple[str, ...] = ()


REPORTS: dict[str, Report] = {
    r.name: r
    for r in (
        Report(
            "spend_per_team_per_day",
            "USD, calls and tokens per tenant and team per day (rollup `spend_daily`).",
            """SELECT day, tenant, team, sum(calls) AS calls,
       sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
       sum(cost_usd) AS cost_usd
FROM spend_daily
GROUP BY day, tenant, team
ORDER BY day DESC, cost_usd DESC
LIMIT 1000""",
        ),
        Report(
            "spend_per_tenant_per_day",
            "USD and calls per tenant per day (rollup `spend_daily`).",
            """SELECT day, tenant, sum(calls) AS calls, sum(cost_usd) AS cost_usd
FROM spend_daily
GROUP BY day, tenant
ORDER BY day DESC, cost_usd DESC
LIMIT 1000""",
        ),
        Report(
            "spend_per_model_per_day",
            "USD, calls and tokens per provider and model per day (rollup `spend_daily`).",
            """SELECT day, provider, model, sum(calls) AS calls,
       sum(prompt_tokens + completion_tokens) AS tokens, sum(cost_usd) AS cost_usd
FROM spend_daily
GROUP BY day, provider, model
ORDER BY day DESC, cost_usd DESC
LIMIT 1000""",
        ),
        Report(
            "cost_per_project_per_week",
            "USD per tenant and project per week, weeks starting Monday (rollup `spend_daily`).",
            """SELECT toStartOfWeek(day, 1) AS week, tenant, project, sum(calls) AS calls, sum(cost_usd) AS cost_usd
FROM spend_daily
GROUP BY week, tenant, project
ORDER BY week DESC, cost_usd DESC
LIMIT 1000""",
        ),
        Report(
            "top_sessions_by_cost",
            "The 20 most expensive sessions (rollup `session_totals`).",
            """SELECT tenant, session_id, any(project) AS project, any(team) AS team, sum(calls) AS calls,
       max(max_iteration) AS iterations, sum(prompt_tokens) AS prompt_tokens,
       sum(completion_tokens) AS completion_tokens, sum(cost_usd) AS cost_usd,
       min(first_ts) AS first_ts, max(last_ts) AS last_ts
FROM session_totals
GROUP BY tenant, session_id
ORDER BY cost_usd DESC, session_id
LIMIT 20""",
        ),
        Report(
            "runaway_candidates",
            "Sessions of the last 24 h whose prompt grew more than 1.4x from one call to the next at least "
            "3 times: the signature of a context-appending loop.",
            """SELECT tenant, session_id, count() AS growth_steps, max(iteration) AS last_iteration,
       max(prompt_tokens) AS max_prompt_tokens
FROM (
    SELECT tenant, session_id, iteration, prompt_tokens,
           lagInFrame(prompt_tokens, 1, 0) OVER (
               PARTITION BY tenant, session_id ORDER BY ts, call_id
               ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS previous_prompt_tokens
    FROM llm_calls
    WHERE session_id != '' AND ts >= now() - INTERVAL 1 DAY
)
WHERE previous_prompt_tokens > 0 AND prompt_tokens > previous_prompt_tokens * 1.4
GROUP BY tenant, session_id
HAVING growth_steps >= 3
ORDER BY growth_steps DESC, max_prompt_tokens DESC
LIMIT 50""",
        ),
        Report(
            "tokens_per_iteration",
            "Tokens and USD per iteration of one session (parameter `session_id`).",
            """SELECT iteration, count() AS calls, sum(prompt_tokens) AS prompt_tokens,
       sum(completion_tokens) AS completion_tokens, sum(cost_usd) AS cost_usd
FROM llm_calls
WHERE session_id = %(session_id)s
GROUP BY iteration
ORDER BY iteration""",
            params=("session_id",),
        ),
        Report(
            "latency_per_model",
            "p50 / p95 latency and time to first token per provider and model, last 7 days.",
            """SELECT provider, model, count() AS calls,
       round(quantile(0.5)(latency_ms), 1) AS p50_latency_ms,
       round(quantile(0.95)(latency_ms), 1) AS p95_latency_ms,
       round(quantile(0.5)(ttft_ms), 1) AS p50_ttft_ms
FROM llm_calls
WHERE ts >= now() - INTERVAL 7 DAY
GROUP BY provider, model
ORDER BY calls DESC""",
        ),
        Report(
            "error_rate_per_model",
            "Share of calls with an HTTP status >= 400 or an outcome other than ok, per model, last 7 days.",
            """SELECT provider, model, count() AS calls,
       countIf(status_code >= 400 OR outcome != 'ok') AS failed,
       round(failed / calls, 4) AS error_rate
FROM llm_calls
WHERE ts >= now() - INTERVAL 7 DAY
GROUP BY provider, model
ORDER BY error_rate DESC, calls DESC""",
        ),
        Report(
            "cache_hit_ratio_per_model",
            "Share of prompt tokens served from the provider's prompt cache, per model, last 7 days.",
            """SELECT provider, model, sum(prompt_tokens) AS prompt_tokens, sum(cached_tokens) AS cached_tokens,
       round(if(prompt_tokens = 0, 0, cached_tokens / prompt_tokens), 4) AS cache_hit_ratio
FROM llm_calls
WHERE ts >= now() - INTERVAL 7 DAY
GROUP BY provider, model
ORDER BY prompt_tokens DESC""",
        ),
        Report(
            "unpriced_calls",
            "Calls whose model had no known price (cost unknown, never counted as $0), per model.",
            """SELECT provider, model, count() AS calls, sum(prompt_tokens + completion_tokens) AS tokens
FROM llm_calls
WHERE cost_usd IS NULL
GROUP BY provider, model
ORDER BY calls DESC""",
        ),
        Report(
            "alerts_per_detector_per_day",
            "Alerts per day, tenant, detector and severity.",
            """SELECT toDate(ts) AS day, tenant, detector, severity, count() AS alerts
FROM alerts
GROUP BY day, tenant, detector, severity
ORDER BY day DESC, alerts DESC""",
        ),
        Report(
            "risk_findings_per_type",
            "PII / secret findings per tenant and type, last 30 days.",
            """SELECT tenant, finding_type, location, sum(count) AS occurrences, uniqExact(call_id) AS calls
FROM risk_findings
WHERE ts >= now() - INTERVAL 30 DAY
GROUP BY tenant, finding_type, location
ORDER BY occurrences DESC""",
        ),
    )
}
