"""A prompt holding an AWS access key, sent with the official openai SDK through the gateway
process, is captured, scanned by the risk-scan process, and yields a finding, one high alert
and a redacted payload on Kafka — the key itself in none of them."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from services.common.events import Alert, PayloadCaptured, RiskFinding, encode
from services.common.topics import Topics
from tests.e2e.kafka_events import read_events
from tests.e2e.procs import agentwatch_bin
from tests.fixtures import OPENAI_KEY, GatewayFactory

AWS = "AKIAZ3MQX7RT2WLE5YQN"


@pytest.fixture
def risk_scan(tmp_root: Path, kafka_bootstrap: str, topic_prefix: str) -> Iterator[subprocess.Popen[bytes]]:
    log = tmp_root / "logs" / f"risk-scan-{topic_prefix}log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "AGENTWATCH_TOPIC_PREFIX": topic_prefix,
        "AGENTWATCH_TOPIC_PARTITIONS": "3",
        "AGENTWATCH_RISK_GROUP_ID": f"{topic_prefix}risk",
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [agentwatch_bin(), "risk-scan"], env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


async def test_aws_key_in_prompt_is_found_alerted_and_redacted(
    gateway_factory: GatewayFactory,
    risk_scan: subprocess.Popen[bytes],
    kafka_bootstrap: str,
    topic_prefix: str,
) -> None:
    gw = gateway_factory(AGENTWATCH_CAPTURE_PAYLOADS="true")
    session = f"e2e-{uuid.uuid4().hex[:8]}"
    client = openai.AsyncOpenAI(
        base_url=f"{gw.url}/v1/proxy/openai",
        api_key="tok-alpha",
        default_headers={"X-AgentWatch-Session-Id": session},
        max_retries=0,
    )
    resp = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"deploy with key {AWS} now"}]
    )
    call_id = resp.headers["X-AgentWatch-Call-Id"]
    await client.close()

    topics = Topics.with_prefix(topic_prefix)

    findings = await read_events(
        kafka_bootstrap,
        topics.risk_findings,
        lambda ev: any(isinstance(e, RiskFinding) and e.call_id == call_id for e in ev),
        timeout_s=60,
    )
    found = [e for e in findings if isinstance(e, RiskFinding) and e.call_id == call_id]
    assert [(f.finding_type, f.location, f.message_index, f.severity) for f in found] == [
        ("aws_access_key", "request", 0, "high")
    ]
    assert found[0].tenant == "alpha" and found[0].session_id == session

    stored = await read_events(
        kafka_bootstrap,
        topics.payloads_redacted,
        lambda ev: any(isinstance(e, PayloadCaptured) and e.call_id == call_id for e in ev),
    )
    payload = next(e for e in stored if isinstance(e, PayloadCaptured) and e.call_id == call_id)
    assert payload.redacted and "[REDACTED:aws_access_key]" in payload.request_body

    alerts = await read_events(kafka_bootstrap, topics.alerts, lambda ev: len(ev) >= 1, timeout_s=30)
    mine = [a for a in alerts if isinstance(a, Alert) and a.evidence.get("call_id") == call_id]
    assert len(mine) == 1 and mine[0].severity == "high" and mine[0].detector == "secret_in_prompt"

    everything = b"".join([*(encode(f) for f in found), encode(payload), *(encode(a) for a in mine)])
    assert AWS.encode() not in everything
    assert OPENAI_KEY.encode() not in everything and b"tok-alpha" not in everything
