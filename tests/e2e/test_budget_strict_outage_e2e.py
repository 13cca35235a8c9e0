"""Strict mode when the reservation gets no answer: first the budget worker is down (broker
up), then the broker itself is down. Fail-open calls are served and charged their actual cost
once the worker folds again; fail-closed calls are refused; nothing stays reserved. The
events that release the reservations go through the gateway's emitter, so the ones produced
while the broker is down wait in its spool."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import localstack
import openai

from tests.budget_support import BudgetWorkers
from tests.e2e.procs import ServiceProcess
from tests.e2e.test_budget_e2e import CONTENT, MAX_TOKENS, USAGE, _get, _wait_replica_ready
from tests.fixtures import GatewayFactory

CALLS = 5
COST = Decimal("0.10")


def _ready(gw: ServiceProcess) -> dict[str, Any]:
    with urllib.request.urlopen(gw.url + "/readyz", timeout=5) as r:
        data: dict[str, Any] = json.loads(r.read())
    return data


async def _until(pred: Any, within_s: float, what: str, seen: list[Any] | None = None) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        value = await asyncio.to_thread(pred)
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}; last seen: {seen[-1] if seen else None}"
        await asyncio.sleep(0.25)


async def _burst(gw: ServiceProcess, token: str, session: str) -> list[str]:
    client = openai.AsyncOpenAI(
        base_url=f"{gw.url}/v1/proxy/openai",
        api_key=token,
        max_retries=0,
        timeout=30,
        default_headers={
            "X-AgentWatch-Session-Id": session,
            "X-AgentWatch-Session-Budget-Usd": "1.00",
            "x-fake-usage": USAGE,
        },
    )

    async def one() -> str:
        try:
            await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": CONTENT}], max_tokens=MAX_TOKENS
            )
            return "ok"
        except openai.APIStatusError as e:
            body = e.body if isinstance(e.body, dict) else {}
            return f"{e.status_code}:{body.get('code')}"

    try:
        return list(await asyncio.gather(*(one() for _ in range(CALLS))))
    finally:
        await client.close()


def _settled(
    gw: ServiceProcess, token: str, session: str, spent: Decimal, seen: list[Any] | None = None
) -> dict[str, Any] | None:
    status, body = _get(f"{gw.url}/v1/budget-check?session_id={session}", token)
    assert status == 200, body
    if seen is not None:
        seen.append(body)
    done = body["state_known"] and Decimal(body["reserved_usd"]) == 0 and Decimal(body["spent_usd"]) == spent
    return body if done else None


async def test_strict_reservations_without_answer_are_released_and_charged(
    gateway_factory: GatewayFactory, own_kafka: localstack.Kafka, topic_prefix: str, tmp_root: Path, unique: str
) -> None:
    workers = BudgetWorkers(
        tmp_root / f"outage-{unique}",
        dict(os.environ)
        | {
            "KAFKA_BOOTSTRAP_SERVERS": own_kafka.bootstrap,
            "AGENTWATCH_TOPIC_PREFIX": topic_prefix,
            "AGENTWATCH_TOPIC_PARTITIONS": "4",
            "AGENTWATCH_BUDGET_SESSION_TIMEOUT_S": "6",
            "AGENTWATCH_BUDGET_COMMIT_INTERVAL_S": "0.5",
        },
    )
    policies = {"alpha": {"budget_mode": "strict"}, "beta": {"budget_mode": "strict", "on_unknown_state": "closed"}}
    try:
        workers.start("w1")
        gw = gateway_factory(
            KAFKA_BOOTSTRAP_SERVERS=own_kafka.bootstrap,
            AGENTWATCH_TOPIC_PARTITIONS="4",
            AGENTWATCH_TENANT_POLICIES=json.dumps(policies),
            AGENTWATCH_BUDGET_STRICT_TIMEOUT_S="1",
            AGENTWATCH_KAFKA_SEND_TIMEOUT_S="2",
        )
        await asyncio.to_thread(_wait_replica_ready, gw)
        # Warm up until the worker owns its partitions and grants in time (beta fails closed).
        n = 0

        async def granted() -> bool:
            nonlocal n
            n += 1
            return await _burst(gw, "tok-beta", f"warm-{unique}-{n}") == ["ok"] * CALLS

        deadline = time.monotonic() + 120
        while not await granted():
            assert time.monotonic() < deadline, "the budget worker never granted in time"

        # 1. The worker is down, the broker up: requests go unanswered.
        await asyncio.to_thread(workers.stop_all)
        assert await _burst(gw, "tok-alpha", f"open1-{unique}") == ["ok"] * CALLS
        assert await _burst(gw, "tok-beta", f"closed1-{unique}") == ["503:budget_state_unknown"] * CALLS

        # 2. The broker is down too: the events of these calls wait in the gateway's spool.
        await asyncio.to_thread(own_kafka.stop)
        assert await _burst(gw, "tok-alpha", f"open2-{unique}") == ["ok"] * CALLS
        assert await _burst(gw, "tok-beta", f"closed2-{unique}") == ["503:budget_state_unknown"] * CALLS
        down = await _until(
            lambda: (s := _ready(gw))["broker"] == "down" and s["queued_events"] == 0 and s, 30, "never spooled"
        )
        assert down["spooled_bytes"] > 0

        await asyncio.to_thread(own_kafka.start)
        await _until(lambda: (s := _ready(gw))["broker"] == "up" and s["spooled_bytes"] == 0, 90, "spool not drained")
        workers.start("w2")
        for token, session, spent in (
            ("tok-alpha", f"open1-{unique}", COST * CALLS),
            ("tok-alpha", f"open2-{unique}", COST * CALLS),
            ("tok-beta", f"closed1-{unique}", Decimal(0)),
            ("tok-beta", f"closed2-{unique}", Decimal(0)),
        ):
            seen: list[Any] = []
            await _until(
                lambda t=token, s=session, c=spent, b=seen: _settled(gw, t, s, c, b),
                120,
                f"{session} not settled",
                seen,
            )
    finally:
        await asyncio.to_thread(workers.stop_all)
