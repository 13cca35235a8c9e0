"""Lag from a CallFinished event to its effect in a gateway's local session replica.

Starts one real budget worker (`agentwatch budget`) on the given broker under a fresh topic
prefix, produces CallStarted+CallFinished pairs at a fixed rate to many sessions, and times,
in a SessionReplica fed by the table's changelog, when each call's cost shows up: the lag is
that moment minus the CallFinished's creation time (same host clock).

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python bench/budget_lag.py --rate 1000 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from aiokafka import AIOKafkaProducer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.common.events import CallFinished, CallStarted, encode  # noqa: E402
from services.common.session_state import SessionState, changelog_topic  # noqa: E402
from services.common.topics import Topics, ensure_topics  # noqa: E402
from services.gateway.replica import SessionReplica  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def main(args: argparse.Namespace) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    topics = Topics.with_prefix(prefix)
    await ensure_topics(bootstrap, (topics.calls, topics.controls), partitions=args.partitions)
    data = Path(tempfile.mkdtemp(prefix="aw-bench-budget-"))
    env = dict(os.environ) | {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AGENTWATCH_TOPIC_PREFIX": prefix,
        "AGENTWATCH_TOPIC_PARTITIONS": str(args.partitions),
        "AGENTWATCH_BUDGET_WEB_PORT": str(args.web_port),
        "AGENTWATCH_BUDGET_DATA_DIR": str(data),
        "AGENTWATCH_BUDGET_COMMIT_INTERVAL_S": "1",
    }
    log = (data / "worker.log").open("wb")
    worker = subprocess.Popen(  # noqa: ASYNC220 (started once, before the timed part)
        [sys.executable, "-m", "services.cli", "budget"], env=env, cwd=ROOT, stdout=log, stderr=log
    )
    sent_at: dict[str, float] = {}  # call id -> CallFinished creation (epoch seconds)
    lags: list[float] = []

    def on_update(key: bytes, state: SessionState | None) -> None:
        if state is None:
            return
        now = datetime.now(UTC).timestamp()
        for call_id in state.recent_finished[-4:]:
            t = sent_at.pop(call_id, None)
            if t is not None:
                lags.append((now - t) * 1000)

    replica = SessionReplica(bootstrap, changelog_topic(prefix), listener=on_update)
    await replica.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=2)
    await producer.start()
    try:
        # Warm up: wait until the worker folds (Faust start and group join take seconds).
        warm = CallFinished(
            tenant="bench",
            session_id="warm",
            call_id="warm",
            provider="openai",
            endpoint="x",
            status_code=200,
            cost_usd=Decimal("0.001"),
        )
        sent_at["warm"] = time.time()
        await producer.send_and_wait(topics.calls, encode(warm), key=warm.key)
        deadline = time.monotonic() + 120
        while "warm" in sent_at and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        lags.clear()
        total = int(args.rate * args.seconds)
        load_before = os.getloadavg()[0]
        cpu0 = cpu_seconds(worker.pid)
        t0 = time.monotonic()
        for i in range(total):
            session = f"s{i % args.sessions}"
            cid = f"c{i}"
            common = {"tenant": "bench", "session_id": session, "call_id": cid, "provider": "openai", "endpoint": "x"}
            started = CallStarted(**common, reserved_usd=Decimal("0.01"))  # type: ignore[arg-type]
            finished = CallFinished(**common, status_code=200, cost_usd=Decimal("0.005"))  # type: ignore[arg-type]
            sent_at[cid] = finished.ts.timestamp()
            await producer.send(topics.calls, encode(started), key=started.key)
            await producer.send(topics.calls, encode(finished), key=finished.key)
            ahead = (i + 1) / args.rate - (time.monotonic() - t0)
            if ahead > 0:
                await asyncio.sleep(ahead)
        await producer.flush()
        deadline = time.monotonic() + 30
        while sent_at and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        achieved = total / (time.monotonic() - t0)
        worker_cpu = cpu_seconds(worker.pid) - cpu0
        print(
            f"calls: {total} at {args.rate}/s target = {2 * args.rate:.0f} events/s "
            f"({achieved:.0f} calls/s incl. drain), sessions: {args.sessions}, partitions: {args.partitions}, "
            f"load average {load_before:.2f} -> {os.getloadavg()[0]:.2f}"
        )
        print(f"worker CPU: {worker_cpu:.1f} s = {worker_cpu / (2 * total) * 1e6:.0f} µs per event")
        print(
            f"CallFinished -> replica lag ms: p50 {percentile(lags, 0.5):.1f}  p99 {percentile(lags, 0.99):.1f}  "
            f"max {max(lags):.1f}  (measured {len(lags)}, missing {len(sent_at)})"
        )
    finally:
        await producer.stop()
        await replica.stop()
        worker.terminate()
        worker.wait(timeout=30)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=1000, help="calls (CallFinished events) per second")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--web-port", type=int, default=16099)
    asyncio.run(main(p.parse_args()))
