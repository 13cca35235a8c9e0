"""Posting one alert to one HTTP target, with retries.

Exponential backoff with full jitter between attempts; a 429's ``Retry-After`` (seconds or an
HTTP date) replaces the backoff, capped. 5xx, 408, 429 and network errors are retried; any
other 4xx is a permanent refusal (a bad or revoked webhook) and is not retried.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from services.anomaly.errors import DeliveryError, DeliveryExhausted
from services.anomaly.settings import NotifierSettings


@dataclass(frozen=True, slots=True)
class Target:
    # ``name`` is what logs and the dead-letter topic show; the URL may hold a secret (Slack).
    name: str
    url: str
    kind: str  # "slack" or "webhook"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    base_s: float
    max_s: float
    retry_after_max_s: float

    @classmethod
    def from_settings(cls, s: NotifierSettings) -> RetryPolicy:
        return cls(
            s.notifier_max_attempts, s.notifier_backoff_base_s, s.notifier_backoff_max_s, s.notifier_retry_after_max_s
        )

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Delay after failed attempt number ``attempt`` (1-based): full jitter on base·2^(n-1)."""
        ceiling = min(self.max_s, self.base_s * 2 ** (attempt - 1))
        return rng.uniform(ceiling / 2, ceiling)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


async def post_once(http: aiohttp.ClientSession, target: Target, body: bytes, headers: dict[str, str]) -> None:
    try:
        async with http.post(target.url, data=body, headers=headers) as resp:
            if resp.status < 300:
                await resp.read()
                return
            text = (await resp.text(errors="replace"))[:200]
            retryable = resp.status >= 500 or resp.status in (408, 429)
            retry_after = parse_retry_after(resp.headers.get("Retry-After")) if resp.status in (429, 503) else None
            raise DeliveryError(f"HTTP {resp.status}: {text}", retry_after=retry_after, retryable=retryable)
    except (aiohttp.ClientError, TimeoutError) as exc:
        # Some aiohttp errors quote the URL, and a Slack webhook URL is a credential.
        detail = str(exc).replace(target.url, f"<{target.name}>")
        raise DeliveryError(f"{type(exc).__name__}: {detail}") from None


Sleep = Callable[[float], Awaitable[Any]]


async def deliver(
    http: aiohttp.ClientSession,
    target: Target,
    body: bytes,
    headers: dict[str, str],
    policy: RetryPolicy,
    *,
    rng: random.Random | None = None,
    sleep: Sleep = asyncio.sleep,
) -> int:
    """Posts until accepted; returns the attempts used, or raises ``DeliveryExhausted``."""
    rng = rng or random.Random()
    last = ""
    for attempt in range(1, policy.max_attempts + 1):
        try:
            await post_once(http, target, body, headers)
            return attempt
        except DeliveryError as exc:
            last = str(exc)
            if not exc.retryable:
                raise DeliveryExhausted(target.name, attempt, last) from exc
            if attempt == policy.max_attempts:
                break
            if exc.retry_after is not None:
                delay = min(exc.retry_after, policy.retry_after_max_s)
            else:
                delay = policy.backoff(attempt, rng)
            await sleep(delay)
    raise DeliveryExhausted(target.name, policy.max_attempts, last)
