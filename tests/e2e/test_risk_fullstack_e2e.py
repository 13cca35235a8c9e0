"""Issue 8's end-to-end acceptance with every service as a process: a prompt holding an AWS
access key, sent with aw-sdk's ``WatchedOpenAI`` through the gateway (payload capture on),
scanned by ``agentwatch risk-scan``, stored by ``agentwatch sink`` (PostgreSQL and the
embedded ClickHouse the sink owns) and alerted by ``agentwatch notifier`` to the local Slack
receiver, yields a finding in both stores, exactly one Slack alert and a stored payload with
the key redacted — the raw key, the provider key and the client token in neither store."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import psycopg
import pytest
from agentwatch import WatchedOpenAI

from services.common.topics import Topics, ensure_topics
from tests.e2e.procs import ServiceProcess, agentwatch_bin, free_port
from tests.fixtures import OPENAI_KEY, GatewayFactory

AWS = "AKIAZ3MQX7RT2WLE5YQN"
# The one partition count of every process and topic in this test (gateway_factory uses it too).
PARTITIONS = "3"
WAIT_S = 90.0
T = TypeVar("T")


def _env(kafka_bootstrap: str, prefix: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "AGENTWATCH_TOPIC_PREFIX": prefix,
        "AGENTWATCH_TOPIC_PARTITIONS": PARTITIONS,
        **extra,
    }


@pytest.fixture
def services(
    tmp_root: Path, kafka_bootstrap: str, topic_prefix: str, pg_database: str, unique: str
) -> Iterator[dict[str, ServiceProcess]]:
    """Slack receiver, notifier, risk-scan and sink as processes; stopped by PID afterwards."""
    asyncio.run(ensure_topics(kafka_bootstrap, Topics.with_prefix(topic_prefix).all(), partitions=int(PARTITIONS)))
    logs = tmp_root / "logs"
    slack_port, sink_port = free_port(), free_port()
    slack_url = f"http://127.0.0.1:{slack_port}/services/T000/B000/XXXX"
    specs = [
        ServiceProcess(
            "slack",
            [sys.executable, "-m", "tests.fakes.slack", "--port", str(slack_port)],
            dict(os.environ),
            slack_port,
            logs / f"slack-{unique}.log",
            ready_path="/_messages",
        ),
        ServiceProcess(
            "notifier",
            [agentwatch_bin(), "notifier"],
            _env(
                kafka_bootstrap,
                topic_prefix,
                SLACK_WEBHOOK_URL=slack_url,
                AGENTWATCH_NOTIFIER_GROUP=f"{unique}-notifier",
            ),
            0,
            logs / f"notifier-{unique}.log",
            ready_log="Setting newly assigned partitions",
        ),
        ServiceProcess(
            "risk-scan",
            [agentwatch_bin(), "risk-scan"],
            _env(kafka_bootstrap, topic_prefix, AGENTWATCH_RISK_GROUP_ID=f"{unique}-risk"),
            0,
            logs / f"risk-scan-{unique}.log",
            ready_log="Setting newly assigned partitions",
        ),
        ServiceProcess(
            "sink",
            [agentwatch_bin(), "sink"],
            _env(
                kafka_bootstrap,
                topic_prefix,
                DATABASE_URL=pg_database,
                # The sink process owns this chdb path; the test reads it through /query.
                CLICKHOUSE_URL=f"chdb://{tmp_root / ('chdb-' + unique)}",
                AGENTWATCH_CLICKHOUSE_DATABASE=unique,
                AGENTWATCH_GROUP_PREFIX=f"{unique}-",
                AGENTWATCH_SINK_PORT=str(sink_port),
                AGENTWATCH_BATCH_MS="200",
            ),
            sink_port,
            logs / f"sink-{unique}.log",
        ),
    ]
    started: list[ServiceProcess] = []
    try:
        for spec in specs:
            started.append(spec.start(timeout=90))
        yield {p.name: p for p in started}
    finally:
        for p in reversed(started):
            p.stop()


async def _eventually(probe: Callable[[], Awaitable[T | None]], what: str, within: float = WAIT_S) -> T:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        got = await probe()
        if got is not None:
            return got
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")


async def _pg(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return await (await conn.execute(sql, params)).fetchall()


async def _ch(http: aiohttp.ClientSession, sink: ServiceProcess, sql: str) -> list[Any]:
    async with http.post(f"{sink.url}/query", json={"sql": sql}) as resp:
        body = await resp.json()
        assert resp.status == 200, body
        rows: list[Any] = body["rows"]
        return rows


async def test_aws_key_via_sdk_found_in_both_stores_alerted_once_and_redacted(
    gateway_factory: GatewayFactory,
    services: dict[str, ServiceProcess],
    pg_database: str,
) -> None:
    gw = gateway_factory(AGENTWATCH_CAPTURE_PAYLOADS="true")
    session = f"risk-{uuid.uuid4().hex[:8]}"
    client = WatchedOpenAI(
        agentwatch_api_key="tok-alpha",
        agentwatch_url=gw.url,
        agentwatch_project="checkout-service",
        agentwatch_team="payments-eng",
        agentwatch_session_id=session,
        max_retries=0,
    )

    def call() -> Any:
        return client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"deploy with key {AWS} now"}]
        )

    raw = await asyncio.to_thread(call)
    assert raw.parse().choices[0].message.content
    call_id = raw.headers["X-AgentWatch-Call-Id"]
    assert re.fullmatch(r"[A-Za-z0-9_-]+", call_id), call_id  # safe to inline in SQL below

    sink, slack = services["sink"], services["slack"]

    async def pg_finding() -> list[tuple[Any, ...]] | None:
        rows = await _pg(
            pg_database,
            "SELECT tenant, session_id, finding_type, location, message_index, count, severity, preview"
            " FROM risk_findings WHERE call_id = %s",
            call_id,
        )
        return rows or None

    findings = await _eventually(pg_finding, "the finding in PostgreSQL")
    assert len(findings) == 1, findings
    tenant, sess, ftype, location, index, count, severity, preview = findings[0]
    assert (tenant, sess, ftype, location, index, count, severity) == (
        "alpha",
        session,
        "aws_access_key",
        "request",
        0,
        1,
        "high",
    )
    assert AWS not in preview

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def ch_finding() -> list[Any] | None:
            rows = await _ch(
                http,
                sink,
                "SELECT tenant, session_id, finding_type, location, severity FROM risk_findings"
                f" WHERE call_id = '{call_id}'",
            )
            return rows or None

        assert await _eventually(ch_finding, "the finding in ClickHouse") == [
            ["alpha", session, "aws_access_key", "request", "high"]
        ]

        async def pg_payload() -> list[tuple[Any, ...]] | None:
            rows = await _pg(pg_database, "SELECT request_body FROM payloads WHERE call_id = %s", call_id)
            return rows or None

        [(request_body,)] = await _eventually(pg_payload, "the redacted payload in PostgreSQL")
        assert "[REDACTED:aws_access_key]" in request_body and AWS not in request_body
        assert "deploy with key" in request_body  # the rest of the prompt is kept

        async def slack_alerts() -> list[Any] | None:
            async with http.get(f"{slack.url}/_messages") as resp:
                messages: list[Any] = await resp.json()
            return messages or None

        first = await _eventually(slack_alerts, "the Slack alert")
        # Exactly one: give a duplicate (a second alert, a retried post) time to show up.
        await asyncio.sleep(5)
        messages = await slack_alerts()
        assert messages is not None and len(messages) == 1 == len(first), messages
        assert messages[0]["text"].startswith(":rotating_light: AgentWatch: secret in prompt (high)")
        text = json.dumps(messages[0])
        assert f"alpha/{session}" in text and AWS not in text

        async def pg_alert() -> list[tuple[Any, ...]] | None:
            rows = await _pg(pg_database, "SELECT detector, severity FROM alerts WHERE session_id = %s", session)
            return rows or None

        assert await _eventually(pg_alert, "the alert in PostgreSQL") == [("secret_in_prompt", "high")]

        # Neither store holds the raw key, the provider key or the client token, in any table.
        pg_dump = await _pg(
            pg_database,
            "SELECT string_agg(t::text, ' ') FROM ("
            " SELECT to_jsonb(x)::text AS t FROM llm_calls x UNION ALL"
            " SELECT to_jsonb(x)::text FROM sessions x UNION ALL"
            " SELECT to_jsonb(x)::text FROM alerts x UNION ALL"
            " SELECT to_jsonb(x)::text FROM risk_findings x UNION ALL"
            " SELECT to_jsonb(x)::text FROM payloads x) s",
        )
        ch_tables = await _ch(http, sink, "SELECT name FROM system.tables WHERE database = currentDatabase()")
        ch_dump = [await _ch(http, sink, f"SELECT * FROM {name}") for [name] in ch_tables]
    everything = json.dumps([pg_dump, ch_dump], default=str)
    assert call_id in everything  # the dump does hold this call's rows
    for secret in (AWS, OPENAI_KEY, "tok-alpha"):
        assert secret not in everything
