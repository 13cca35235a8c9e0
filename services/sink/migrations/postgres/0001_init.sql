-- AgentWatch sink schema v1. Applied once, in a transaction, recorded in schema_migrations.

CREATE TABLE llm_calls (
    call_id           text        NOT NULL,
    ts                timestamptz NOT NULL,
    event_id          text        NOT NULL,
    tenant            text        NOT NULL,
    project           text,
    team              text,
    session_id        text,
    iteration         integer,
    provider          text        NOT NULL,
    model             text,
    endpoint          text        NOT NULL,
    streamed          boolean     NOT NULL,
    status_code       integer     NOT NULL,
    outcome           text        NOT NULL,
    prompt_tokens     bigint      NOT NULL,
    completion_tokens bigint      NOT NULL,
    cached_tokens     bigint      NOT NULL,
    reasoning_tokens  bigint      NOT NULL,
    cost_usd          numeric(20, 9),
    price_known       boolean     NOT NULL,
    reserved_usd      numeric(20, 9) NOT NULL,
    started_at        timestamptz,
    latency_ms        double precision NOT NULL,
    ttft_ms           double precision,
    source            text        NOT NULL,
    gateway_id        text,
    -- The partition key must be part of the key; a call's ts never changes, so call_id
    -- alone still decides whether a replayed row is new.
    PRIMARY KEY (call_id, ts)
) PARTITION BY RANGE (ts);

CREATE INDEX llm_calls_session_idx ON llm_calls (tenant, session_id, ts);

CREATE TABLE sessions (
    tenant            text        NOT NULL,
    session_id        text        NOT NULL,
    project           text,
    team              text,
    calls             bigint      NOT NULL DEFAULT 0,
    max_iteration     integer,
    prompt_tokens     bigint      NOT NULL DEFAULT 0,
    completion_tokens bigint      NOT NULL DEFAULT 0,
    cached_tokens     bigint      NOT NULL DEFAULT 0,
    reasoning_tokens  bigint      NOT NULL DEFAULT 0,
    cost_usd          numeric(20, 9) NOT NULL DEFAULT 0,
    unpriced_calls    bigint      NOT NULL DEFAULT 0,
    error_calls       bigint      NOT NULL DEFAULT 0,
    first_ts          timestamptz NOT NULL,
    last_ts           timestamptz NOT NULL,
    PRIMARY KEY (tenant, session_id)
);

CREATE TABLE alerts (
    alert_id    text        PRIMARY KEY,
    event_id    text        NOT NULL,
    ts          timestamptz NOT NULL,
    tenant      text        NOT NULL,
    session_id  text,
    project     text,
    team        text,
    detector    text        NOT NULL,
    severity    text        NOT NULL,
    message     text        NOT NULL,
    evidence    jsonb       NOT NULL,
    spent_usd   numeric(20, 9),
    budget_usd  numeric(20, 9)
);
CREATE INDEX alerts_tenant_ts_idx ON alerts (tenant, ts);

CREATE TABLE risk_findings (
    finding_id    text        PRIMARY KEY,
    event_id      text        NOT NULL,
    ts            timestamptz NOT NULL,
    tenant        text        NOT NULL,
    session_id    text,
    call_id       text        NOT NULL,
    location      text        NOT NULL,
    message_index integer,
    finding_type  text        NOT NULL,
    count         integer     NOT NULL,
    severity      text        NOT NULL,
    preview       text        NOT NULL
);
CREATE INDEX risk_findings_tenant_ts_idx ON risk_findings (tenant, ts);

CREATE TABLE payloads (
    event_id      text        PRIMARY KEY,
    call_id       text        NOT NULL,
    ts            timestamptz NOT NULL,
    tenant        text        NOT NULL,
    session_id    text,
    provider      text        NOT NULL,
    endpoint      text        NOT NULL,
    request_body  text        NOT NULL,
    response_body text,
    truncated     boolean     NOT NULL
);
CREATE INDEX payloads_call_idx ON payloads (call_id);
