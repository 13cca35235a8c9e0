"""Gateway latency with the anomaly service off, on, and off again.

Starts the fake upstream and one gateway process (loopback, shared broker at
KAFKA_BOOTSTRAP_SERVERS, a unique topic prefix), then sends CALLS sequential chat completions
per phase through the gateway with an aiohttp client, 8 sessions round-robin, each prompt
growing so the detectors have work to do: phase 1 without the anomaly service, phase 2 with
the worker and the notifier processes running (Slack: a local receiver), phase 3 without
again (the spread between 1 and 3 is the noise floor). Bounded: CALLS per phase, 120 s per
phase. With ``--pin`` the gateway, the fake upstream and this client run on CPU 0 and the
anomaly worker and notifier on CPU 1, so the comparison shows the gateway's own path rather
than two processes competing for one core.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python bench/anomaly_gateway_latency.py [CALLS] [--pin]
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "docker")]

from localstack import stop_pid  # noqa: E402

from tests.e2e import procs  # noqa: E402
from tests.fakes.slack import SlackReceiver  # noqa: E402
from tests.integration.anomaly_support import anomaly_worker, ensure  # noqa: E402


async def phase(url: str, calls: int, tag: str) -> list[float]:
    out: list[float] = []
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as http:
        for i in range(calls):
            if time.monotonic() > deadline:
                break
            session = f"{tag}-{i % 8}"
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "retry " * (10 + 3 * (i // 8))}]}
            headers = {"Authorization": "Bearer tok-bench", "X-AgentWatch-Session-Id": session}
            t0 = time.perf_counter()
            async with http.post(f"{url}/v1/proxy/openai/chat/completions", json=body, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    raise SystemExit(f"gateway answered {r.status}")
            out.append((time.perf_counter() - t0) * 1000)
    return out


def summary(name: str, xs: list[float]) -> str:
    q = statistics.quantiles(xs, n=100)
    return f"{name}: n={len(xs)} p50={q[49]:.2f} ms p95={q[94]:.2f} ms p99={q[98]:.2f} ms"


def start_notifier(env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    with (logs / "notifier.log").open("ab") as out:
        return subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "agentwatch"), "notifier"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def pin(pid: int, cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(pid, {cpu})


async def main(calls: int, pinned: bool) -> None:
    front, back = (0, 1) if pinned else (None, None)
    pin(0, front)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    prefix = f"gwbench{uuid.uuid4().hex[:6]}."
    await ensure(bootstrap, prefix)
    logs = Path(tempfile.mkdtemp())
    fake = procs.fake_upstream(procs.free_port(), logs, record=False).start()
    gw_port = procs.free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AGENTWATCH_TOPIC_PREFIX": prefix,
        "AGENTWATCH_TOPIC_PARTITIONS": "3",
        "OPENAI_API_KEY": "sk-bench",
        "TENANT_TOKEN_MAP": json.dumps({"tok-bench": "bench"}),
        "AGENTWATCH_OPENAI_BASE_URL": f"{fake.url}/v1",
        "AGENTWATCH_SPOOL_DIR": str(logs / "spool"),
    }
    gw = procs.gateway(gw_port, logs, env).start()
    pin(fake.pid, front)
    pin(gw.pid, front)
    try:
        await phase(gw.url, 50, "warmup")
        off1 = await phase(gw.url, calls, "off1")
        async with SlackReceiver() as slack:
            with anomaly_worker(bootstrap, prefix, logs, {}) as worker:
                pin(worker.pid, back)
                notifier = start_notifier(
                    {**os.environ, **env, "SLACK_WEBHOOK_URL": slack.url, "AGENTWATCH_NOTIFIER_GROUP": prefix}, logs
                )
                pin(notifier.pid, back)
                try:
                    on = await phase(gw.url, calls, "on")
                    await asyncio.sleep(3)
                finally:
                    stop_pid(notifier.pid)
            alerts = len(slack.delivered)
        off2 = await phase(gw.url, calls, "off2")
    finally:
        gw.stop()
        fake.stop()
    print(summary("anomaly off  ", off1))
    print(summary("anomaly on   ", on) + f"  (Slack messages during the phase: {alerts})")
    print(summary("anomaly off 2", off2))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    asyncio.run(main(int(args[0]) if args else 500, "--pin" in sys.argv))
