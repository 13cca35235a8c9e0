"""Budgets end to end: gateway process + budget worker process + official openai SDK clients."""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.error
import urllib.request
from decimal import Decimal
from typing import Any

import openai
import pytest

from tests.budget_support import BudgetWorkers
from tests.e2e.procs import ServiceProcess

ADMIN = "admin-secret-token"
# gpt-4o: 112 estimated input tokens ($2.50/M) + max_tokens 9972 ($10/M) = exactly $0.10, and
# the fake upstream reports exactly that usage: the reservation equals the cost.
CONTENT = "x" * 296
MAX_TOKENS = 9972
USAGE = "input=112,output=9972"


def _get(url: str, token: str) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _post(url: str, token: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _fake_requests(fake: ServiceProcess) -> list[dict[str, Any]]:
    with urllib.request.urlopen(fake.url + "/_fake/requests", timeout=5) as r:
        data: list[dict[str, Any]] = json.loads(r.read())
    return data


def _clear_fake(fake: ServiceProcess) -> None:
    urllib.request.urlopen(urllib.request.Request(fake.url + "/_fake/requests", method="DELETE"), timeout=5).close()


def _wait_replica_ready(gw: ServiceProcess, within_s: float = 90) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(gw.url + "/metrics", timeout=5) as r:
            if "agentwatch_budget_replica_ready 1.0" in r.read().decode():
                return
        time.sleep(0.2)
    raise AssertionError("gateway's session replica never became ready")


@pytest.fixture
def stack(gateway_factory, budget_workers: BudgetWorkers, fake_upstream_proc: ServiceProcess):
    budget_workers.start("w1")
    gw = gateway_factory(AGENTWATCH_TOPIC_PARTITIONS="4", AGENTWATCH_ADMIN_TOKEN=ADMIN)
    _wait_replica_ready(gw)
    _clear_fake(fake_upstream_proc)
    return gw


async def test_fifty_concurrent_sdk_clients_exactly_ten_reach_upstream(
    stack: ServiceProcess, fake_upstream_proc: ServiceProcess, unique: str
):
    session = f"burst-{unique}"
    client = openai.AsyncOpenAI(
        base_url=f"{stack.url}/v1/proxy/openai",
        api_key="tok-alpha",
        max_retries=0,
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
            assert e.status_code == 402, e
            body = e.body if isinstance(e.body, dict) else {}
            return str(body.get("code"))

    results = await asyncio.gather(*(one() for _ in range(50)))
    await client.close()
    assert results.count("ok") == 10
    assert results.count("budget_exceeded") == 40
    upstream = [r for r in _fake_requests(fake_upstream_proc) if r["path"].endswith("/chat/completions")]
    assert len(upstream) == 10

    # The table folds the ten calls: spent is exactly $1.00 and nothing stays reserved.
    deadline = time.monotonic() + 60
    while True:
        status, body = _get(f"{stack.url}/v1/budget-check?session_id={session}", "tok-alpha")
        assert status == 200
        if body["state_known"] and Decimal(body["reserved_usd"]) == 0:
            break
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.2)
    assert Decimal(body["spent_usd"]) == Decimal("1.00")
    assert body["allowed"] is False and body["blocked"] is True and body["budget_usd"] == "1.00"


async def test_tenant_isolation_and_admin_controls(stack: ServiceProcess, unique: str):
    session = f"iso-{unique}"
    headers = {"X-AgentWatch-Session-Id": session, "x-fake-usage": USAGE}
    alpha = openai.OpenAI(base_url=f"{stack.url}/v1/proxy/openai", api_key="tok-alpha", max_retries=0)
    alpha.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": CONTENT}],
        max_tokens=MAX_TOKENS,
        extra_headers={**headers, "X-AgentWatch-Session-Budget-Usd": "0.50"},
    )
    # Tenant beta's view of "the same" session id is its own, empty session.
    _, beta_view = _get(f"{stack.url}/v1/budget-check?session_id={session}", "tok-beta")
    _, alpha_view = _get(f"{stack.url}/v1/budget-check?session_id={session}", "tok-alpha")
    assert Decimal(alpha_view["spent_usd"]) == Decimal("0.10") and alpha_view["budget_usd"] == "0.50"
    assert Decimal(beta_view["spent_usd"]) == 0 and beta_view["budget_usd"] is None
    # Tenant tokens cannot use the admin API, not even on their own sessions.
    for token in ("tok-alpha", "tok-beta"):
        assert _get(f"{stack.url}/v1/admin/sessions/alpha/{session}", token)[0] == 401
        assert _post(f"{stack.url}/v1/admin/sessions/alpha/{session}/pause", token, {})[0] == 401
    assert _get(f"{stack.url}/v1/budget-check?session_id={session}", "nope")[0] == 401
    # The admin pauses beta's session of that id: alpha's is untouched, beta's refuses calls.
    assert _post(f"{stack.url}/v1/admin/sessions/beta/{session}/pause", ADMIN, {"reason": "test"})[0] == 202
    deadline = time.monotonic() + 60
    while not _get(f"{stack.url}/v1/admin/sessions/beta/{session}", ADMIN)[1]["paused"]:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    assert _get(f"{stack.url}/v1/admin/sessions/alpha/{session}", ADMIN)[1]["paused"] is False
    beta = openai.OpenAI(base_url=f"{stack.url}/v1/proxy/openai", api_key="tok-beta", max_retries=0)
    with pytest.raises(openai.APIStatusError) as exc:
        beta.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=5, extra_headers=headers
        )
    assert exc.value.status_code == 402 and isinstance(exc.value.body, dict)
    assert exc.value.body.get("code") == "session_paused"
    alpha.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=5, extra_headers=headers
    )
    # A call may lower the budget but not raise it; the admin can raise it.
    _get(f"{stack.url}/v1/budget-check?session_id={session}", "tok-alpha")
    assert _post(f"{stack.url}/v1/admin/sessions/alpha/{session}/budget", ADMIN, {"budget_usd": "5"})[0] == 202
    deadline = time.monotonic() + 60
    while _get(f"{stack.url}/v1/budget-check?session_id={session}", "tok-alpha")[1]["budget_usd"] != "5":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    assert _post(f"{stack.url}/v1/admin/sessions/alpha/{session}/budget", ADMIN, {"budget_usd": "-1"})[0] == 400
    alpha.close()
    beta.close()


async def test_strict_mode_two_gateways_two_workers_budget_holds_exactly(
    gateway_factory, budget_workers: BudgetWorkers, fake_upstream_proc: ServiceProcess, unique: str
):
    budget_workers.start("w1")
    budget_workers.start("w2")
    policies = json.dumps({"alpha": {"budget_mode": "strict"}})
    gws = [
        gateway_factory(
            AGENTWATCH_TOPIC_PARTITIONS="4", AGENTWATCH_TENANT_POLICIES=policies, AGENTWATCH_GATEWAY_ID=f"gw{i}"
        )
        for i in range(2)
    ]
    for gw in gws:
        _wait_replica_ready(gw)
    clients = [
        openai.AsyncOpenAI(
            base_url=f"{gw.url}/v1/proxy/openai",
            api_key="tok-alpha",
            max_retries=0,
            default_headers={"X-AgentWatch-Session-Budget-Usd": "1.00", "x-fake-usage": USAGE},
        )
        for gw in gws
    ]

    async def one(i: int, session: str) -> str:
        try:
            await clients[i % 2].chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": CONTENT}],
                max_tokens=MAX_TOKENS,
                extra_headers={"X-AgentWatch-Session-Id": session},
            )
            return "ok"
        except openai.APIStatusError as e:
            body = e.body if isinstance(e.body, dict) else {}
            return f"{e.status_code}:{body.get('code')}"

    # Warm up until both workers own their partitions and answer (group join, assignment).
    deadline, streak, n = time.monotonic() + 120, 0, 0
    while streak < 6:
        assert time.monotonic() < deadline, "budget workers never answered promptly"
        n += 1
        streak = streak + 1 if await one(n, f"warm-{unique}-{n}") == "ok" else 0
    _clear_fake(fake_upstream_proc)
    session = f"strict-{unique}"
    results = await asyncio.gather(*(one(i, session) for i in range(40)))
    for c in clients:
        await c.close()
    assert results.count("ok") == 10, results
    assert results.count("402:budget_exceeded") == 30
    upstream = [r for r in _fake_requests(fake_upstream_proc) if r["path"].endswith("/chat/completions")]
    assert len(upstream) == 10


async def test_fast_mode_two_gateways_two_workers_overshoot_at_most_one_call_per_gateway(
    gateway_factory, budget_workers: BudgetWorkers, fake_upstream_proc: ServiceProcess, unique: str
):
    """The acceptance's shape in fast mode: 50 concurrent SDK clients split over two gateways,
    budget $1.00, $0.10 a call, calls of 0.5-2 s, each client calling until refused."""
    budget_workers.start("w1")
    budget_workers.start("w2")
    gws = [
        gateway_factory(
            AGENTWATCH_TOPIC_PARTITIONS="4",
            AGENTWATCH_BUDGET_FAST_GATEWAYS="2",
            # The bound holds while the table catches up within the wait; on this shared
            # 2-core machine a worker's fold can lag past the default 1 s.
            AGENTWATCH_BUDGET_FAST_WAIT_S="5",
            AGENTWATCH_GATEWAY_ID=f"fast{i}",
        )
        for i in range(2)
    ]
    for gw in gws:
        _wait_replica_ready(gw)
    clients = [
        openai.AsyncOpenAI(
            base_url=f"{gw.url}/v1/proxy/openai",
            api_key="tok-alpha",
            max_retries=0,
            default_headers={"X-AgentWatch-Session-Budget-Usd": "1.00", "x-fake-usage": USAGE},
        )
        for gw in gws
    ]
    rng = random.Random(7)

    async def one(i: int, session: str, latency_ms: int = 0) -> str:
        try:
            await clients[i % 2].chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": CONTENT}],
                max_tokens=MAX_TOKENS,
                extra_headers={"X-AgentWatch-Session-Id": session, "x-fake-latency-ms": str(latency_ms)},
            )
            return "ok"
        except openai.APIStatusError as e:
            body = e.body if isinstance(e.body, dict) else {}
            return f"{e.status_code}:{body.get('code')}"

    def folded(session: str, spent: Decimal) -> bool:
        for gw in gws:
            _, body = _get(f"{gw.url}/v1/budget-check?session_id={session}", "tok-alpha")
            if not (body["state_known"] and Decimal(body["reserved_usd"]) == 0 and Decimal(body["spent_usd"]) == spent):
                return False
        return True

    # Warm up until both workers own their partitions and fold promptly (the share relies on
    # the table reflecting each gateway's calls).
    deadline, streak, n = time.monotonic() + 120, 0, 0
    while streak < 6:
        assert time.monotonic() < deadline, "budget workers never folded promptly"
        n += 1
        warm = f"warm-{unique}-{n}"
        assert await one(n, warm) == "ok"
        prompt = False
        for _ in range(40):  # 2 s
            if prompt := folded(warm, Decimal("0.10")):
                break
            await asyncio.sleep(0.05)
        streak = streak + 1 if prompt else 0
    _clear_fake(fake_upstream_proc)

    session = f"fast-{unique}"

    async def client(i: int) -> list[str]:
        results = []
        while True:
            results.append(await one(i, session, rng.randint(500, 2000)))
            if results[-1] != "ok":
                return results

    per_client = await asyncio.gather(*(client(i) for i in range(50)))
    for c in clients:
        await c.close()
    results = [r for rs in per_client for r in rs]
    ok = results.count("ok")
    assert set(results) == {"ok", "402:budget_exceeded"}, results
    upstream = [r for r in _fake_requests(fake_upstream_proc) if r["path"].endswith("/chat/completions")]
    assert len(upstream) == ok
    # The budget is used up, and passed by at most one call per gateway.
    assert 10 <= ok <= 12, ok
    deadline = time.monotonic() + 60
    while not folded(session, Decimal("0.10") * ok):
        assert time.monotonic() < deadline, "the table never reflected every call"
        await asyncio.sleep(0.2)
