"""The pause policy end to end: an agent on aw-sdk loops through the gateway; the detection
worker (policy ``pause`` for its tenant) emits a pause control; the budget worker folds it; the
gateway refuses the next call with 402 ``session_paused``, which the SDK raises as
AgentSessionPaused; after an admin resume, calls go through again."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agentwatch import AgentSessionPaused, AsyncWatchedOpenAI

from tests.budget_support import BudgetWorkers
from tests.e2e.procs import ServiceProcess
from tests.e2e.test_budget_e2e import ADMIN, _post
from tests.e2e.test_budget_e2e import _wait_replica_ready as wait_ready
from tests.fixtures import GatewayFactory
from tests.integration.anomaly_support import Worker, anomaly_worker, ensure

TENANT = "alpha"
PARTITIONS = 4  # as tests/budget_support.py


@pytest.fixture
def pausing_worker(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[Worker]:
    # Budgets, detection and the gateway share the calls and controls topics: one partition count.
    asyncio.run(ensure(kafka_bootstrap, topic_prefix, partitions=PARTITIONS))
    # Only the growth detector may pause here: the waiting loops below repeat one request many
    # times, which velocity or repetition would otherwise (rightly) flag as a loop too.
    quiet = {"max_calls_per_minute": 100_000, "repetition_count": 1_000}
    policies = {TENANT: {"loop_policy": "pause", "detectors": quiet}}
    with anomaly_worker(kafka_bootstrap, topic_prefix, tmp_path, policies, partitions=PARTITIONS) as w:
        yield w


async def _grow(client: AsyncWatchedOpenAI, messages: list[dict[str, str]]) -> None:
    """One loop iteration: re-send the whole context plus ~50% more (a context-appending loop)."""
    reply = await client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
    answer = reply.choices[0].message.content or ""
    want = len(json.dumps(messages)) // 2
    messages.append({"role": "assistant", "content": answer})
    messages.append({"role": "user", "content": ("It failed again: " + answer + " ") * (want // 20 + 1)})


async def test_detected_loop_pauses_the_session_until_resumed(
    gateway_factory: GatewayFactory,
    budget_workers: BudgetWorkers,
    pausing_worker: Worker,
    fake_upstream_proc: ServiceProcess,
) -> None:
    budget_workers.start("w1")
    gw = gateway_factory(AGENTWATCH_TOPIC_PARTITIONS="4", AGENTWATCH_ADMIN_TOKEN=ADMIN)
    wait_ready(gw)
    session = f"pause-{uuid.uuid4().hex[:6]}"
    client = AsyncWatchedOpenAI(
        agentwatch_api_key="tok-alpha", agentwatch_url=gw.url, agentwatch_session_id=session, max_retries=0
    )
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You fix failing builds."},
        {"role": "user", "content": "The build fails: " + "error: undefined symbol. " * 40},
    ]
    for _ in range(4):  # three consecutive growths over 1.4x
        await _grow(client, messages)
    deadline = time.monotonic() + 30
    while True:
        try:
            await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        except AgentSessionPaused as exc:
            assert exc.session_id == session
            break
        assert time.monotonic() < deadline, f"the session was never paused: {pausing_worker.text()[-1500:]}"
        await asyncio.sleep(0.2)
    status, _ = _post(f"{gw.url}/v1/admin/sessions/{TENANT}/{session}/resume", ADMIN, {})
    assert status in (200, 202)
    deadline = time.monotonic() + 30
    while True:
        try:
            await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "y"}])
            break
        except AgentSessionPaused:
            assert time.monotonic() < deadline, "the resume never took effect"
            await asyncio.sleep(0.2)
