"""Builds the gateway's budget parts and runs them for the app's lifetime.

The replica and the strict-mode client need the broker; the gateway must start and serve
without it (events spool), so they connect in the background and, until then, sessions are
in "unknown state" and each tenant's on_unknown_state applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator

from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from services.common.session_state import changelog_topic
from services.gateway import keys
from services.gateway.budget import BudgetLedger
from services.gateway.budget_admission import BudgetAdmission
from services.gateway.config import GatewaySettings
from services.gateway.replica import SessionReplica
from services.gateway.strict import BrokerSender, StrictReservations

log = logging.getLogger(__name__)

# The periodic ledger sweep: a few sessions at a time (~3 us each), so it never holds the
# event loop for long; ~1,300 sessions a second drain what a burst left behind when calls stop.
_SWEEP_EVERY_S = 0.05
_SWEEP_SESSIONS = 64


class _BudgetCollector(Collector):
    def __init__(self, ledger: BudgetLedger, replica: SessionReplica) -> None:
        self._ledger = ledger
        self._stats = ledger.stats
        self._replica = replica

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        c = CounterMetricFamily("agentwatch_budget_admissions", "Budget admission decisions", labels=["decision"])
        s = self._stats
        for label, value in (
            ("admitted", s.admitted),
            ("refused_budget", s.refused_budget),
            ("refused_paused", s.refused_paused),
            ("unknown_state_open", s.unknown_open),
            ("unknown_state_closed", s.unknown_closed),
            ("deferred_share", s.deferred),
        ):
            c.add_metric([label], value)
        yield c
        yield GaugeMetricFamily(
            "agentwatch_budget_replica_ready", "Session replica caught up", value=int(self._replica.ready)
        )
        lag = self._replica.lag()
        yield GaugeMetricFamily(
            "agentwatch_budget_replica_lag_records", "Changelog records not applied", value=lag or 0
        )
        yield GaugeMetricFamily(
            "agentwatch_budget_replica_sessions", "Sessions in the replica", value=len(self._replica)
        )
        yield GaugeMetricFamily(
            "agentwatch_budget_local_sessions",
            "Sessions with calls of this gateway the replica does not reflect yet",
            value=len(self._ledger),
        )


def install(app: web.Application, settings: GatewaySettings) -> BudgetAdmission:
    topics = app[keys.TOPICS]
    replica = SessionReplica(
        settings.kafka_bootstrap_servers, changelog_topic(settings.topic_prefix), admission_fields_only=True
    )
    ledger = BudgetLedger(replica, stale_after_s=settings.budget_stale_after_s, gateways=settings.budget_fast_gateways)
    sender = BrokerSender()
    strict = StrictReservations(
        settings.kafka_bootstrap_servers,
        requests_topic=topics.reservations,
        decisions_topic=topics.reservation_decisions,
        gateway_id=app[keys.GATEWAY_ID],
        send=sender.send,
    )
    admission = BudgetAdmission(
        settings,
        ledger,
        strict,
        app[keys.GATEWAY_ID],
        strict_timeout_s=settings.budget_strict_timeout_s,
        fast_wait_s=settings.budget_fast_wait_s,
    )
    app[keys.REPLICA] = replica
    app[keys.LEDGER] = ledger
    app[keys.BUDGET] = admission
    app[keys.STRICT] = strict
    app[keys.SENDER] = sender
    app[keys.METRICS].registry.register(_BudgetCollector(ledger, replica))
    return admission


async def _connect_strict(settings: GatewaySettings, sender: BrokerSender, strict: StrictReservations) -> None:
    while True:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True
        )
        try:
            await producer.start()
            await strict.start()
        except KafkaError as exc:
            log.warning("strict budget client not connected yet: %s", exc)
            await producer.stop()
            await asyncio.sleep(1.0)
            continue
        sender.producer = producer
        return


async def _sweep(ledger: BudgetLedger) -> None:
    # Admissions sweep as they come; this covers the quiet times after a burst.
    while True:
        await asyncio.sleep(_SWEEP_EVERY_S)
        ledger.sweep(_SWEEP_SESSIONS)


async def budget_ctx(app: web.Application) -> AsyncIterator[None]:
    replica = app[keys.REPLICA]
    sender = app[keys.SENDER]
    strict = app[keys.STRICT]
    await replica.start()
    connect = asyncio.create_task(_connect_strict(app[keys.SETTINGS], sender, strict))
    sweep = asyncio.create_task(_sweep(app[keys.LEDGER]), name="budget-ledger-sweep")
    yield
    for task in (sweep, connect):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await strict.stop()
    if sender.producer is not None:
        await sender.producer.stop()
    await replica.stop()
