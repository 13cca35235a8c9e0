"""Gateway memory with 100,000 sessions in its local state.

Fills the budget workers' sessions changelog (the topic the gateway's replica reads) with N
``SessionState`` records, as budget workers would after N sessions of a few calls each,
starts one gateway process (budgets on, event emission on) in front of the fake upstream,
waits until its replica holds all N sessions (``/metrics``), then drives calls through it
with distinct session ids (so the gateway's own per-session state fills too) and reads
VmRSS / VmHWM from /proc.

With ``--with-worker`` a real budget worker folds the driven calls, as in production: the
gateway's ledger then drops each call's local entry once the table reflects it, whether or not
the session calls again. Without one, nothing is folded and every entry is kept (correctly:
it is the only record of that cost) until ``forget_after_s``.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python bench/rss_sessions.py [--sessions 100000] [--with-worker]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare

sys.path.insert(0, str(compare.ROOT))
from aiokafka import AIOKafkaProducer

from services.common.events import new_id, session_key
from services.common.session_state import SessionState, changelog_topic, encode_state
from services.common.topics import Topics, ensure_topics

TENANT = "bench"


def state(i: int, now: datetime) -> SessionState:
    return SessionState(
        tenant=TENANT,
        session_id=f"bench-session-{i}",
        spent_usd=Decimal("0.0123") + Decimal(i % 100) / 10000,
        input_tokens=5 * 800,
        output_tokens=5 * 120,
        calls=5,
        iterations=5,
        last_iteration=4,
        budget_usd=Decimal("10"),
        project="bench-project",
        team="bench-team",
        first_seen=now - timedelta(minutes=5),
        last_seen=now,
        recent_finished=[new_id() for _ in range(5)],
    )


async def fill(bootstrap: str, topic: str, n: int) -> None:
    await ensure_topics(bootstrap, [topic], partitions=12, configs={"cleanup.policy": "compact"})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        now = datetime.now(UTC)
        pending = []
        for i in range(n):
            s = state(i, now)
            pending.append(await producer.send(topic, encode_state(s), key=session_key(TENANT, s.session_id)))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def start_worker(stack: ExitStack, work: Path, bootstrap: str, prefix: str) -> None:
    topics = Topics.with_prefix(prefix)
    names = [topics.calls, topics.controls, topics.reservations, topics.reservation_decisions]
    asyncio.run(ensure_topics(bootstrap, names, partitions=12))
    env = dict(os.environ) | {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AGENTWATCH_TOPIC_PREFIX": prefix,
        "AGENTWATCH_BUDGET_DATA_DIR": str(work / "budget"),
        "AGENTWATCH_BUDGET_WEB_PORT": str(compare.localstack.free_port()),
    }
    log = (work / "budget.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "budget"], env=env, cwd=compare.ROOT, stdout=log, stderr=log
    )
    stack.callback(proc.wait, 30)
    stack.callback(proc.terminate)


def wait_folding(target: compare.Target, body: Path, metrics_url: str) -> None:
    """Until the worker has recovered the changelog and folds: a few calls (not the load
    generator, whose warm-up is a flood), then the gateway's ledger empties."""
    headers = dict(h.split(": ", 1) for h in target.headers)
    deadline = time.monotonic() + 180
    n = 0
    while time.monotonic() < deadline:
        for _ in range(5):
            n += 1
            req = urllib.request.Request(
                target.url, data=body.read_bytes(), headers=headers | {"X-AgentWatch-Session-Id": f"warm-{n}"}
            )
            urllib.request.urlopen(req, timeout=30).read()
        time.sleep(2)
        if metric(metrics_url, "agentwatch_budget_local_sessions") == 0:
            return
    raise SystemExit("the budget worker never folded the calls")


def metric(url: str, name: str) -> float | None:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    m = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--drive-seconds", type=float, default=30.0, help="calls with distinct session ids")
    parser.add_argument("--with-worker", action="store_true", help="a budget worker folds the driven calls")
    parser.add_argument("--rate", type=float, default=None, help="calls/s while driving (default: closed loop)")
    args = parser.parse_args()
    loadgen = compare.build_loadgen()
    work = Path(tempfile.mkdtemp(prefix="aw-rss-"))
    body = work / "body.json"
    body.write_text(json.dumps(compare.BODY))
    prefix = f"rss{int(time.time())}."
    with ExitStack() as stack:
        bootstrap = compare.kafka_bootstrap(stack, work)
        t0 = time.monotonic()
        asyncio.run(fill(bootstrap, changelog_topic(prefix), args.sessions))
        print(f"changelog filled with {args.sessions} sessions in {time.monotonic() - t0:.1f}s", flush=True)
        if args.with_worker:
            start_worker(stack, work, bootstrap, prefix)
        upstream = compare.start_upstream(stack, work, 0.0)
        target = compare.start_agentwatch(stack, work, upstream, prefix=prefix)
        assert target.pid is not None
        metrics_url = target.url.split("/v1/")[0] + "/metrics"
        print(f"gateway just started: {compare.rss_mb(target.pid)}", flush=True)
        deadline = time.monotonic() + 120
        loaded = 0.0
        while time.monotonic() < deadline:
            loaded = metric(metrics_url, "agentwatch_budget_replica_sessions") or 0.0
            if loaded >= args.sessions and metric(metrics_url, "agentwatch_budget_replica_ready") == 1:
                break
            time.sleep(0.5)
        loaded_rss = compare.rss_mb(target.pid)
        print(f"replica holds {loaded:.0f} sessions: {loaded_rss}", flush=True)
        if args.with_worker:
            wait_folding(target, body, metrics_url)
        target.vary_header = "X-AgentWatch-Session-Id: bench-session-%d"
        r = compare.run_load(
            loadgen, target, body, rate=args.rate, seconds=args.drive_seconds, vary_count=args.sessions
        )
        driven_rss = compare.rss_mb(target.pid)
        print(
            f"after {r['ok']} calls over {min(r['ok'], args.sessions)} distinct sessions "
            f"({r['achieved_rps']:.0f}/s): {driven_rss}, "
            f"local ledger sessions {metric(metrics_url, 'agentwatch_budget_local_sessions')}",
            flush=True,
        )
        if args.with_worker:
            # No more calls: the folded entries go through the gateway's periodic sweep.
            deadline = time.monotonic() + 60
            while (metric(metrics_url, "agentwatch_budget_local_sessions") or 0) > 0 and time.monotonic() < deadline:
                time.sleep(1)
            print(
                f"idle until the ledger is swept: {compare.rss_mb(target.pid)}, "
                f"local ledger sessions {metric(metrics_url, 'agentwatch_budget_local_sessions')}"
            )
        print(f"replica sessions at the end: {metric(metrics_url, 'agentwatch_budget_replica_sessions')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
