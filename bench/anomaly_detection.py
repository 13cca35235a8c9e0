"""Detection latency: third consecutive >1.4x growth produced to Kafka → Slack message received.

Starts its own detection worker process (``agentwatch anomaly``) on a unique topic prefix of
the broker at KAFKA_BOOTSTRAP_SERVERS, runs the real notifier in-process against the local
Slack receiver, then drives SESSIONS growth loops one after another (bounded: 60 s per
session at most) and prints percentiles.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python bench/anomaly_detection.py [SESSIONS]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "docker")]

from services.anomaly.delivery import Target  # noqa: E402
from services.anomaly.settings import NotifierSettings  # noqa: E402
from tests.fakes.slack import SlackReceiver  # noqa: E402
from tests.integration.anomaly_support import (  # noqa: E402
    anomaly_worker,
    ensure,
    finished,
    producer,
    running_notifier,
    send,
)


async def main(sessions: int) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    topics = await ensure(bootstrap, prefix)
    latencies: list[float] = []
    with anomaly_worker(bootstrap, prefix, Path(tempfile.mkdtemp()), {}):
        settings = NotifierSettings(kafka_bootstrap_servers=bootstrap, topic_prefix=prefix, notifier_group=prefix)
        async with (
            SlackReceiver() as slack,
            running_notifier(settings, [Target("slack", slack.url, "slack")]),
            producer(bootstrap) as p,
        ):
            for n in range(sessions):
                session = f"b{n}"
                for i in range(4):
                    await send(p, topics, finished("acme", session, i, tokens=int(1000 * 1.5**i)))
                sent = time.monotonic()
                got = await slack.wait_for(n + 1, within=60)
                if len(got) <= n:
                    print(f"session {session}: no alert within 60 s", file=sys.stderr)
                    continue
                latencies.append(got[n].at - sent)
    if not latencies:
        raise SystemExit("no alert arrived")
    q = statistics.quantiles(latencies, n=20) if len(latencies) >= 2 else latencies * 19
    print(
        f"sessions={len(latencies)} detection->slack ms: p50={statistics.median(latencies) * 1000:.0f} "
        f"p95={q[18] * 1000:.0f} max={max(latencies) * 1000:.0f}"
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
