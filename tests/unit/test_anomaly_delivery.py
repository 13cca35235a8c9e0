"""Posting to a real local HTTP receiver: retries, Retry-After, permanent refusals."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from localstack import free_port

from services.anomaly.delivery import RetryPolicy, Target, deliver, parse_retry_after
from services.anomaly.errors import DeliveryExhausted
from tests.fakes.slack import Reply, SlackReceiver

POLICY = RetryPolicy(max_attempts=4, base_s=0.05, max_s=0.2, retry_after_max_s=5)


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(min(delay, 0.01))


async def post(url: str, policy: RetryPolicy = POLICY) -> tuple[int, Sleeps]:
    sleeps = Sleeps()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        n = await deliver(
            http, Target("slack", url, "slack"), b'{"text": "hi"}', {}, policy, rng=random.Random(1), sleep=sleeps
        )
    return n, sleeps


async def test_500_then_429_retry_after_then_200_delivers_once() -> None:
    async with SlackReceiver(script=[Reply(500), Reply(429, retry_after="3")]) as r:
        attempts, sleeps = await post(r.url)
    assert attempts == 3
    assert [a.status for a in r.attempts] == [500, 429, 200]
    assert len(r.delivered) == 1 and r.delivered[0].body == {"text": "hi"}
    # First a jittered backoff within [base/2, base], then exactly what Retry-After said.
    assert 0.025 <= sleeps.delays[0] <= 0.05 and sleeps.delays[1] == 3.0


async def test_retry_after_is_capped() -> None:
    async with SlackReceiver(script=[Reply(429, retry_after="3600")]) as r:
        _, sleeps = await post(r.url)
    assert sleeps.delays == [5.0] and len(r.delivered) == 1


async def test_permanent_refusal_is_not_retried() -> None:
    async with SlackReceiver(script=[Reply(404, body="no_service")]) as r:
        with pytest.raises(DeliveryExhausted) as exc:
            await post(r.url)
    assert exc.value.attempts == 1 and "404" in exc.value.last_error and len(r.attempts) == 1


async def test_receiver_down_exhausts_the_budget_with_growing_backoff() -> None:
    with pytest.raises(DeliveryExhausted) as exc:
        await post(f"http://127.0.0.1:{free_port()}/hook")
    assert exc.value.attempts == POLICY.max_attempts


def test_backoff_grows_then_caps_and_is_jittered() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.05), (2, 0.1), (3, 0.2), (4, 0.2), (10, 0.2)]:
        d = POLICY.backoff(attempt, rng)
        assert ceiling / 2 <= d <= ceiling


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-3") == 0.0


async def test_an_error_quoting_the_url_does_not_leak_it() -> None:
    # aiohttp's InvalidURL message is the URL itself; a Slack webhook URL is a credential.
    with pytest.raises(DeliveryExhausted) as exc:
        await post("http:///services/T0/B0/very-secret-token", RetryPolicy(1, 0.01, 0.01, 1))
    assert "InvalidUrlClientError" in exc.value.last_error
    assert "very-secret-token" not in str(exc.value) and "very-secret-token" not in exc.value.last_error
