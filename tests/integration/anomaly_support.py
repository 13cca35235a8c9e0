"""Helpers for the anomaly tests: a real detection worker process, an in-process notifier,
and a producer of calls events."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import localstack
from aiokafka import AIOKafkaProducer

from services.anomaly.delivery import Target
from services.anomaly.notifier import Notifier
from services.anomaly.settings import NotifierSettings
from services.common.events import CallFinished, CallStarted, Event, encode
from services.common.topics import Topics, ensure_topics

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 3


@dataclass
class Worker:
    pid: int
    log: Path
    prefix: str

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def anomaly_worker(
    bootstrap: str, prefix: str, log_dir: Path, policies: dict[str, Any], partitions: int = PARTITIONS
) -> Iterator[Worker]:
    """``agentwatch anomaly`` as its own process, as ``make up`` runs it; stopped by PID."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AGENTWATCH_TOPIC_PREFIX": prefix,
        "AGENTWATCH_TOPIC_PARTITIONS": str(partitions),
        "AGENTWATCH_ANOMALY_APP_ID": f"{prefix}anomaly",
        "AGENTWATCH_ANOMALY_WEB_PORT": str(localstack.free_port()),
        "AGENTWATCH_TENANT_POLICIES": json.dumps(policies),
    }
    log = log_dir / f"{prefix}anomaly.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "agentwatch"), "anomaly"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    worker = Worker(proc.pid, log, prefix)
    try:
        deadline = time.monotonic() + 90
        while "Worker ready" not in worker.text():
            if proc.poll() is not None:
                raise RuntimeError(f"anomaly worker exited: {worker.text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"anomaly worker not ready in 90 s: {worker.text()[-2000:]}")
            time.sleep(0.2)
        yield worker
    finally:
        localstack.stop_pid(proc.pid, timeout=20.0)


@asynccontextmanager
async def running_notifier(settings: NotifierSettings, targets: list[Target]) -> AsyncIterator[Notifier]:
    """The real notifier (aiokafka consumer group) as a task of this test's loop."""
    notifier = Notifier(settings, targets=targets)
    await notifier.start()
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(stop))
    try:
        yield notifier
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await notifier.stop()


@asynccontextmanager
async def producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def send(p: AIOKafkaProducer, topics: Topics, event: Event) -> None:
    await p.send_and_wait(topics.calls, value=encode(event), key=event.key)


async def ensure(bootstrap: str, prefix: str, partitions: int = PARTITIONS) -> Topics:
    topics = Topics.with_prefix(prefix)
    await ensure_topics(bootstrap, topics.all(), partitions=partitions)
    return topics


def _call(tenant: str, session: str, i: int) -> dict[str, Any]:
    """The fields naming call ``i`` of a session: the same in its CallStarted and CallFinished."""
    return {
        "tenant": tenant,
        "session_id": session,
        "call_id": f"{session}-{i}",
        "iteration": i,
        "project": "checkout-service",
        "team": "payments-eng",
        "provider": "openai",
        "endpoint": "chat/completions",
    }


def started(tenant: str, session: str, i: int, budget: str | None = None) -> CallStarted:
    return CallStarted(**_call(tenant, session, i), budget_usd=None if budget is None else Decimal(budget))


def finished(
    tenant: str,
    session: str,
    i: int,
    *,
    tokens: int = 100,
    cost: str = "0.001",
    status: int = 200,
    fingerprint: str | None = None,
) -> CallFinished:
    return CallFinished(
        **_call(tenant, session, i),
        status_code=status,
        outcome="ok" if status < 400 else "upstream_error",
        input_tokens=tokens,
        output_tokens=20,
        cost_usd=Decimal(cost),
        fingerprint=fingerprint or f"fp-{session}-{i}",
    )
