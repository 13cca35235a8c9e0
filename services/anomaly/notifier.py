"""The notifier: its own consumer group on the alerts topic, posting each alert to Slack and
to the generic webhooks, never inside the detection worker (a slow Slack cannot delay
detection).

Delivery guarantee, and the crash window we chose: the offset of an alert is committed right
after it was delivered to every target (or dead-lettered), one alert at a time, so a restart
resends nothing whose commit went through. A crash between a successful POST and that commit
resends that one alert (at-least-once): losing an alert about a runaway agent is worse than
a duplicate. Webhook receivers get ``X-AgentWatch-Alert-Id`` (also in the body) to drop such
a duplicate; Slack incoming webhooks cannot deduplicate.

When a target stays down for the whole retry budget, the alert goes to the dead-letter topic
(headers name the target and the last error) and the offset is committed only after the
broker acknowledged that record. When the broker is down, nothing is committed and the
alerts are re-read once it is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import ConsumerRecord

from services.anomaly.delivery import RetryPolicy, Target, deliver
from services.anomaly.errors import DeliveryExhausted
from services.anomaly.settings import NotifierSettings
from services.anomaly.slack import slack_message
from services.common.events import Alert, EventDecodeError, decode, encode
from services.common.topics import Topics

log = logging.getLogger("agentwatch.notifier")


def targets_from_settings(settings: NotifierSettings) -> list[Target]:
    out: list[Target] = []
    if settings.slack_webhook_url is not None:
        out.append(Target("slack", settings.slack_webhook_url.get_secret_value(), "slack"))
    for i, url in enumerate(settings.alert_webhooks):
        out.append(Target(f"webhook[{i}]:{urlsplit(url).hostname}", url, "webhook"))
    return out


def _body(target: Target, alert: Alert) -> bytes:
    if target.kind == "slack":
        return json.dumps(slack_message(alert)).encode()
    return encode(alert)


@dataclass
class _Progress:
    """Offsets handled but not yet committed; the lock keeps a revoke from racing a delivery."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: dict[TopicPartition, int] = field(default_factory=dict)
    # Revoked but the new assignment not in yet: records already fetched for these are left to
    # the next owner (positions restart from the committed offsets after every rebalance).
    revoked: set[TopicPartition] = field(default_factory=set)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        # Let the alert in flight finish and commit it, so the next owner does not resend it.
        async with self._notifier.progress.lock:
            try:
                await self._notifier.commit_pending()
            except (CommitFailedError, IllegalStateError) as exc:
                log.warning("commit on revoke failed (the next owner resends at most one alert): %s", exc)
            self._notifier.progress.revoked.update(revoked)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self._notifier.progress.revoked.clear()


class Notifier:
    def __init__(
        self,
        settings: NotifierSettings,
        *,
        targets: list[Target] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.targets = targets if targets is not None else targets_from_settings(settings)
        self.policy = RetryPolicy.from_settings(settings)
        self.rng = rng or random.Random()
        self.progress = _Progress()
        self.delivered = 0
        self.dead_lettered = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        s = self.settings
        if not self.targets:
            log.warning("no SLACK_WEBHOOK_URL nor AGENTWATCH_ALERT_WEBHOOKS: alerts are read and not sent anywhere")
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=s.notifier_timeout_s))
        self._producer = AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap_servers, enable_idempotence=True, acks="all"
        )
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap_servers,
            group_id=s.notifier_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self._consumer.subscribe([self.topics.alerts], listener=_Rebalance(self))
        await self._consumer.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self._http is not None:
            await self._http.close()

    async def commit_pending(self) -> None:
        if self.progress.pending and self._consumer is not None:
            await self._consumer.commit(dict(self.progress.pending))
            self.progress.pending.clear()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        assert self._consumer is not None
        while stop is None or not stop.is_set():
            batch = await self._consumer.getmany(timeout_ms=200, max_records=100)
            for tp, records in batch.items():
                for record in records:
                    async with self.progress.lock:
                        # A revoked partition's alerts belong to its new owner from its committed offset.
                        if tp in self.progress.revoked or tp not in self._consumer.assignment():
                            break
                        await self.handle(record)
                        self.progress.pending[tp] = record.offset + 1
                        try:
                            await self.commit_pending()
                        except (CommitFailedError, IllegalStateError) as exc:
                            # The group rebalanced under us: the new owner resends this one alert.
                            log.warning("commit after alert at %s@%d failed: %s", tp, record.offset, exc)
                            self.progress.pending.clear()
                            break

    async def handle(self, record: ConsumerRecord) -> None:
        try:
            event = decode(record.value)
        except EventDecodeError as exc:
            await self._dead_letter(record.key, record.value, "decode", str(exc))
            return
        if not isinstance(event, Alert):
            return
        failures = await asyncio.gather(*(self._deliver(t, event) for t in self.targets))
        for failure in failures:
            if failure is not None:
                await self._dead_letter(record.key, record.value, failure.target, failure.last_error)
        if not any(failures):
            self.delivered += 1

    async def _deliver(self, target: Target, alert: Alert) -> DeliveryExhausted | None:
        assert self._http is not None
        headers = {"Content-Type": "application/json", "X-AgentWatch-Alert-Id": alert.alert_id}
        try:
            attempts = await deliver(self._http, target, _body(target, alert), headers, self.policy, rng=self.rng)
        except DeliveryExhausted as exc:
            log.warning("alert %s not delivered to %s: %s", alert.alert_id, target.name, exc)
            return exc
        log.info("alert %s delivered to %s (attempts=%d)", alert.alert_id, target.name, attempts)
        return None

    async def _dead_letter(self, key: bytes | None, value: bytes, target: str, error: str) -> None:
        assert self._producer is not None
        headers = [("agentwatch-target", target.encode()), ("agentwatch-error", error[:500].encode())]
        await self._producer.send_and_wait(self.topics.alerts_dead_letter, value=value, key=key, headers=headers)
        self.dead_lettered += 1
