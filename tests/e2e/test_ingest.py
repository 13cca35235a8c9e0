"""``POST /v1/ingest`` refuses what it cannot trust, in one clear JSON error, and emits nothing."""

from __future__ import annotations

import json
import uuid
from typing import Any

import aiohttp

from services.common.events import CallFinished, Event
from tests.e2e.kafka_events import read_events
from tests.fixtures import GatewayFactory

GOOD: dict[str, Any] = {
    "call_id": "c0ffee00c0ffee00",
    "provider": "openai",
    "endpoint": "chat/completions",
    "status_code": 200,
    "model": "gpt-4o-mini",
    "input_tokens": 10,
    "output_tokens": 2,
}

CASES: list[tuple[str, dict[str, str], Any, int, str]] = [
    ("no token", {}, {"calls": [GOOD]}, 401, "invalid_api_key"),
    ("bad token", {"Authorization": "Bearer nope"}, {"calls": [GOOD]}, 401, "invalid_api_key"),
    ("not json", {}, "{{{", 400, "invalid_ingest"),
    ("empty batch", {}, {"calls": []}, 400, "invalid_ingest"),
    ("negative tokens", {}, {"calls": [{**GOOD, "input_tokens": -1}]}, 400, "invalid_ingest"),
    ("bad provider", {}, {"calls": [{**GOOD, "provider": "mistral"}]}, 400, "invalid_ingest"),
    ("naive time", {}, {"calls": [{**GOOD, "started_at": "2026-12-03T10:00:00"}]}, 400, "invalid_ingest"),
    ("bad session", {}, {"calls": [{**GOOD, "session_id": "x" * 200}]}, 400, "invalid_ingest"),
    ("too many", {}, {"calls": [GOOD] * 1001}, 400, "invalid_ingest"),
]


async def test_bad_ingest_is_refused(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory()
    async with aiohttp.ClientSession() as s:
        for name, headers, body, status, code in CASES:
            auth = headers if headers or name == "no token" else {"Authorization": "Bearer tok-alpha"}
            data = body if isinstance(body, str) else json.dumps(body)
            async with s.post(f"{gw.url}/v1/ingest", data=data, headers=auth) as r:
                assert r.status == status, name
                payload = await r.json()
            assert payload["error"]["code"] == code and payload["error"]["message"], name


async def test_good_batch_emits_one_event_per_call(
    gateway_factory: GatewayFactory, kafka_bootstrap: str, topic_prefix: str
) -> None:
    gw = gateway_factory()
    sid = f"ingest-{uuid.uuid4().hex[:8]}"
    calls = [{**GOOD, "call_id": uuid.uuid4().hex, "session_id": sid, "iteration": i} for i in range(3)]
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{gw.url}/v1/ingest", json={"calls": calls}, headers={"Authorization": "Bearer tok-beta"}) as r,
    ):
        assert r.status == 202 and (await r.json()) == {"accepted": 3}

    def done(evs: list[Event]) -> bool:
        return sum(isinstance(e, CallFinished) and e.session_id == sid for e in evs) >= 3

    events = [e for e in await read_events(kafka_bootstrap, f"{topic_prefix}calls", done) if e.session_id == sid]
    assert sorted(e.call_id for e in events if isinstance(e, CallFinished)) == sorted(c["call_id"] for c in calls)
    assert all(isinstance(e, CallFinished) and e.tenant == "beta" and e.source == "ingest" for e in events)
