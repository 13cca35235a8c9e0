"""Gateway memory with 100,000 sessions in its local state.

Fills the budget workers' sessions changelog (the topic the gateway's replica reads) with N
``SessionState`` records, as budget workers would after N sessions of a few calls each,
starts one gateway process (budgets on, event emission on) in front of the fake upstream,
waits until its replica holds all N sessions (``/metrics``), then drives calls through it
with distinct session ids (so the gateway's own per-session state fills too) and reads
VmRSS / VmHWM from /proc.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python bench/rss_sessions.py [--sessions 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
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
from services.common.topics import ensure_topics

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


def metric(url: str, name: str) -> float | None:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    m = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--drive-seconds", type=float, default=30.0, help="calls with distinct session ids")
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
        target.vary_header = "X-AgentWatch-Session-Id: bench-session-%d"
        r = compare.run_load(loadgen, target, body, rate=None, seconds=args.drive_seconds, vary_count=args.sessions)
        driven_rss = compare.rss_mb(target.pid)
        print(
            f"after {r['ok']} calls over {min(r['ok'], args.sessions)} distinct sessions "
            f"({r['achieved_rps']:.0f}/s): {driven_rss}"
        )
        sessions_after = metric(metrics_url, "agentwatch_budget_replica_sessions")
        print(f"replica sessions at the end: {sessions_after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
