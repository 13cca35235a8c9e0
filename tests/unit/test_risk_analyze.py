"""Payload analysis: where findings are, redaction, the secret alert, and no raw value anywhere."""

from __future__ import annotations

import json
from typing import Any

from services.anomaly.risk.analyze import analyze
from services.anomaly.risk.scanner import Scanner
from services.anomaly.risk.types import SECRET_TYPES
from services.common.events import PayloadCaptured, decode, encode

AWS = "AKIAZ3MQX7RT2WLE5YQN"
CARD = "4539 1488 0343 6467"
EMAIL = "jane.roe@example.org"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Zq3\nabcDEF+/123\n-----END RSA PRIVATE KEY-----"
SALT = b"test-salt"


def _event(request: Any, response: str | None = None) -> PayloadCaptured:
    return PayloadCaptured(
        tenant="acme",
        session_id="s1",
        call_id="c1",
        provider="openai",
        endpoint="chat/completions",
        request_body=json.dumps(request),
        response_body=response,
    )


def test_findings_carry_location_message_index_and_no_raw_value() -> None:
    request = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": f"my key is {AWS} and card {CARD}, mail {EMAIL} or {EMAIL}"},
            {"role": "user", "content": [{"type": "text", "text": PEM}]},
        ],
    }
    response = json.dumps({"choices": [{"message": {"role": "assistant", "content": f"I will email {EMAIL}"}}]})
    result = analyze(_event(request, response), Scanner(), SECRET_TYPES | {"credit_card"}, SALT)
    got = {(f.location, f.message_index, f.finding_type): f.count for f in result.findings}
    assert got == {
        ("request", 1, "aws_access_key"): 1,
        ("request", 1, "credit_card"): 1,
        ("request", 1, "email"): 2,
        ("request", 2, "private_key"): 1,
        ("response", 0, "email"): 1,
    }
    wire = b"".join(encode(e) for e in [*result.findings, result.redacted, result.alert] if e is not None)
    for raw in (AWS, CARD, "MIIEpAIBAAKCAQEA0Zq3", "4539148803436467"):
        assert raw.encode() not in wire
    # Email is not configured for redaction: it stays in the stored copy, never in a finding.
    assert EMAIL.encode() not in b"".join(encode(f) for f in result.findings)
    stored = json.loads(result.redacted.request_body)
    assert stored["messages"][1]["content"] == (
        f"my key is [REDACTED:aws_access_key] and card [REDACTED:credit_card], mail {EMAIL} or {EMAIL}"
    )
    assert stored["messages"][2]["content"][0]["text"] == "[REDACTED:private_key]"
    assert result.redacted.redacted and result.redacted.response_body == response


def test_secret_in_request_raises_one_high_alert() -> None:
    result = analyze(_event({"messages": [{"role": "user", "content": f"{AWS} {AWS}"}]}), Scanner(), SECRET_TYPES, SALT)
    assert result.alert is not None
    assert result.alert.severity == "high" and result.alert.detector == "secret_in_prompt"
    assert result.alert.evidence["types"] == {"aws_access_key": 2}
    assert AWS not in result.alert.message and AWS not in json.dumps(result.alert.evidence)


def test_no_alert_for_pii_or_response_side_secret() -> None:
    response = json.dumps({"content": [{"type": "text", "text": f"here is {AWS}"}]})
    result = analyze(
        _event({"messages": [{"role": "user", "content": EMAIL}]}, response), Scanner(), SECRET_TYPES, SALT
    )
    assert result.alert is None
    assert {(f.location, f.finding_type) for f in result.findings} == {
        ("request", "email"),
        ("response", "aws_access_key"),
    }
    assert AWS not in (result.redacted.response_body or "")


def test_ids_are_stable_across_rescans_so_stores_dedupe() -> None:
    event = _event({"messages": [{"role": "user", "content": AWS}]})
    a, b = (analyze(event, Scanner(), SECRET_TYPES, SALT) for _ in range(2))
    assert [f.finding_id for f in a.findings] == [f.finding_id for f in b.findings]
    assert a.redacted.event_id == b.redacted.event_id and a.alert and b.alert and a.alert.alert_id == b.alert.alert_id


def test_non_json_body_is_scanned_as_text_and_stays_decodable() -> None:
    sse = f'data: {{"choices":[{{"delta":{{"content":"{AWS}"}}}}]}}\n\ndata: [DONE]\n\n'
    event = _event({"messages": []}, sse)
    result = analyze(event, Scanner(), SECRET_TYPES, SALT)
    assert [(f.location, f.message_index, f.finding_type) for f in result.findings] == [
        ("response", None, "aws_access_key")
    ]
    assert AWS not in (result.redacted.response_body or "")
    assert decode(encode(result.redacted)) == result.redacted


def test_escaped_json_is_decoded_before_scanning() -> None:
    body = '{"messages":[{"role":"user","content":"mail jane\\u0040example.org"}]}'
    event = PayloadCaptured(tenant="t", call_id="c", provider="anthropic", endpoint="messages", request_body=body)
    result = analyze(event, Scanner(), SECRET_TYPES | {"email"}, SALT)
    assert [f.finding_type for f in result.findings] == ["email"]
    assert "example.org" not in result.redacted.request_body
