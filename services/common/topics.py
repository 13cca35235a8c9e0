"""Topic names under a configurable prefix, and an idempotent way to create them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from services.common.config import CommonSettings


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic AgentWatch owns. ``calls`` and ``controls`` share the key ``tenant/session``
    and the partition count, so a session's events land on the same partition number of each."""

    calls: str
    payloads: str
    alerts: str
    alerts_dead_letter: str
    controls: str
    risk_findings: str
    # Strict budget mode: requests keyed like calls (co-partitioned), decisions keyed by gateway.
    reservations: str = ""
    reservation_decisions: str = ""
    # Payloads after the risk scanner masked them; the only payload topic the sink stores.
    payloads_redacted: str = ""

    @classmethod
    def with_prefix(cls, prefix: str) -> Topics:
        return cls(
            calls=f"{prefix}calls",
            payloads=f"{prefix}payloads",
            alerts=f"{prefix}alerts",
            alerts_dead_letter=f"{prefix}alerts-dlq",
            controls=f"{prefix}controls",
            risk_findings=f"{prefix}risk-findings",
            reservations=f"{prefix}reservations",
            reservation_decisions=f"{prefix}reservation-decisions",
            payloads_redacted=f"{prefix}payloads-redacted",
        )

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> Topics:
        return cls.with_prefix(settings.topic_prefix)

    def all(self) -> tuple[str, ...]:
        return (
            self.calls,
            self.payloads,
            self.alerts,
            self.alerts_dead_letter,
            self.controls,
            self.risk_findings,
            self.reservations,
            self.reservation_decisions,
            self.payloads_redacted,
        )


async def ensure_topics(
    bootstrap_servers: str,
    names: tuple[str, ...] | list[str],
    *,
    partitions: int = 12,
    replication: int = 1,
    configs: dict[str, str] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; returns the names it created.

    Safe to call from every service at start: a topic that exists (or is created by a racing
    caller) is left as it is.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if not missing:
            return []
        new = [
            NewTopic(name=n, num_partitions=partitions, replication_factor=replication, topic_configs=configs or {})
            for n in missing
        ]
        try:
            await admin.create_topics(new)
        except TopicAlreadyExistsError:
            pass
        # The broker's metadata may lag the controller: return once the topics are visible, so
        # a caller (or the next ensure_topics) never sees them missing right after creation.
        for _ in range(50):
            if set(missing) <= set(await admin.list_topics()):
                break
            await asyncio.sleep(0.2)
        return missing
    finally:
        await admin.close()
