"""aw-sdk against the real gateway and budget worker: a session's budget runs out and the next
call raises AgentBudgetExceeded with the session's figures, without reaching the upstream; a
paused session raises AgentSessionPaused until an admin resumes it."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest
from agentwatch import AgentBudgetExceeded, AgentSessionPaused, AsyncWatchedAnthropic, WatchedOpenAI

from tests.budget_support import BudgetWorkers
from tests.e2e.procs import ServiceProcess
from tests.e2e.test_budget_e2e import ADMIN, CONTENT, MAX_TOKENS, USAGE, _clear_fake, _fake_requests, _post
from tests.e2e.test_budget_e2e import _wait_replica_ready as wait_ready
from tests.fixtures import GatewayFactory


@pytest.fixture
def gw(gateway_factory: GatewayFactory, budget_workers: BudgetWorkers, fake_upstream_proc: ServiceProcess) -> Any:
    budget_workers.start("w1")
    gateway = gateway_factory(AGENTWATCH_TOPIC_PARTITIONS="4", AGENTWATCH_ADMIN_TOKEN=ADMIN)
    wait_ready(gateway)
    _clear_fake(fake_upstream_proc)
    return gateway


def test_budget_runs_out_and_the_next_call_raises_without_reaching_upstream(
    gw: ServiceProcess, fake_upstream_proc: ServiceProcess, unique: str
) -> None:
    session = f"sdk-budget-{unique}"
    client = WatchedOpenAI(
        agentwatch_api_key="tok-alpha",
        agentwatch_url=gw.url,
        agentwatch_session_id=session,
        agentwatch_session_budget_usd="0.30",
        agentwatch_enforcement_mode=True,
        default_headers={"x-fake-usage": USAGE},
        max_retries=0,
    )
    marker = f"{CONTENT}-{unique}"[: len(CONTENT)]
    for _ in range(3):  # each call costs exactly $0.10 (reservation == actual cost)
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": marker}], max_tokens=MAX_TOKENS
        )
    before = len(_fake_requests(fake_upstream_proc))
    with pytest.raises(AgentBudgetExceeded) as caught:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": marker}], max_tokens=MAX_TOKENS
        )
    err = caught.value
    assert err.session_id == session
    assert err.spent_usd == Decimal("0.30") and err.budget_usd == Decimal("0.30")
    assert len(_fake_requests(fake_upstream_proc)) == before  # nothing more reached the upstream


def test_gateway_402_maps_to_agent_budget_exceeded_without_preflight(
    gw: ServiceProcess, fake_upstream_proc: ServiceProcess, unique: str
) -> None:
    session = f"sdk-402-{unique}"
    client = WatchedOpenAI(
        agentwatch_api_key="tok-alpha",
        agentwatch_url=gw.url,
        agentwatch_session_id=session,
        agentwatch_session_budget_usd="0.15",
        default_headers={"x-fake-usage": USAGE},
        max_retries=0,
    )
    client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": CONTENT}], max_tokens=MAX_TOKENS
    )
    with pytest.raises(AgentBudgetExceeded) as caught:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": CONTENT}], max_tokens=MAX_TOKENS
        )
    assert caught.value.budget_usd == Decimal("0.15")
    assert caught.value.spent_usd is not None and caught.value.spent_usd <= Decimal("0.15")
    assert len(_fake_requests(fake_upstream_proc)) == 1


async def test_paused_session_raises_until_resumed(gw: ServiceProcess, unique: str) -> None:
    session = f"sdk-pause-{unique}"
    client = AsyncWatchedAnthropic(
        agentwatch_api_key="tok-alpha",
        agentwatch_url=gw.url,
        agentwatch_session_id=session,
        agentwatch_enforcement_mode=True,
        default_headers={"x-fake-usage": "input=10,output=2"},
        max_retries=0,
    )
    msg: Any = [{"role": "user", "content": "hi"}]
    await client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=msg)
    assert _post(f"{gw.url}/v1/admin/sessions/alpha/{session}/pause", ADMIN, {"reason": "test"})[0] in (200, 202)
    deadline = time.monotonic() + 30
    while True:
        try:
            await client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=msg)
        except AgentSessionPaused as exc:
            assert exc.session_id == session
            break
        assert time.monotonic() < deadline, "the pause never took effect"
    assert _post(f"{gw.url}/v1/admin/sessions/alpha/{session}/resume", ADMIN, {})[0] in (200, 202)
    deadline = time.monotonic() + 30
    while True:
        try:
            await client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=msg)
            break
        except AgentSessionPaused:
            assert time.monotonic() < deadline, "the resume never took effect"
            await asyncio.sleep(0.1)
