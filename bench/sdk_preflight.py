"""Per-call cost of aw-sdk's pre-flight budget check against a local gateway.

Starts the fake upstream and a gateway as their own processes (a real Kafka broker:
KAFKA_BOOTSTRAP_SERVERS, or one started for the run), then times, with the official client
inside ``WatchedOpenAI``:

- the check alone (``GET /v1/budget-check`` as the SDK makes it), N times;
- whole chat calls with ``agentwatch_enforcement_mode`` off and on, N each, interleaved, so
  the difference is the check's cost as an agent sees it.

    .venv/bin/python bench/sdk_preflight.py --calls 1000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "docker"))

import localstack  # noqa: E402
from agentwatch import WatchedOpenAI  # noqa: E402

from tests.e2e import procs  # noqa: E402


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def summary(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"| {name} | {len(ms)} | {pct(ms, 0.5):.3f} | {pct(ms, 0.99):.3f} | {statistics.fmean(ms):.3f} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aw-sdk-bench-"))
    work.chmod(0o755)
    with ExitStack() as stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            kafka = localstack.Kafka(
                work / "kafka", port=localstack.free_port(), controller_port=localstack.free_port()
            )
            kafka.start()
            stack.callback(kafka.stop)
            bootstrap = kafka.bootstrap
        fake = procs.fake_upstream(procs.free_port(), work, record=False).start()
        stack.callback(fake.stop)
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "AGENTWATCH_TOPIC_PREFIX": f"sdkbench{int(time.time())}.",
            "OPENAI_API_KEY": "sk-bench",
            "TENANT_TOKEN_MAP": json.dumps({"tok-bench": "bench"}),
            "AGENTWATCH_OPENAI_BASE_URL": f"{fake.url}/v1",
            "AGENTWATCH_SPOOL_DIR": str(work / "spool"),
        }
        gw = procs.gateway(procs.free_port(), work, env).start()
        stack.callback(gw.stop)
        common = {
            "agentwatch_api_key": "tok-bench",
            "agentwatch_url": gw.url,
            "agentwatch_session_id": "bench-session",
            "agentwatch_session_budget_usd": "1000000",
            "default_headers": {"x-fake-usage": "input=100,output=10"},
            "max_retries": 0,
        }
        plain = WatchedOpenAI(**common)  # type: ignore[arg-type]
        checked = WatchedOpenAI(**common, agentwatch_enforcement_mode=True)  # type: ignore[arg-type]
        msgs = [{"role": "user", "content": "hi"}]
        for client in (plain, checked):  # warm up connections and the gateway's session state
            for _ in range(50):
                client.chat.completions.create(model="gpt-4o-mini", messages=msgs)  # type: ignore[arg-type]
        check_only: list[float] = []
        for _ in range(args.calls):
            t0 = time.perf_counter()
            checked._aw.checker.check("bench-session")
            check_only.append(time.perf_counter() - t0)
        off: list[float] = []
        on: list[float] = []
        for _ in range(args.calls):
            for client, out in ((plain, off), (checked, on)):
                t0 = time.perf_counter()
                client.chat.completions.create(model="gpt-4o-mini", messages=msgs)  # type: ignore[arg-type]
                out.append(time.perf_counter() - t0)
    print("| what | n | p50 ms | p99 ms | mean ms |")
    print("|---|---|---|---|---|")
    print(summary("pre-flight check alone", check_only))
    print(summary("chat call, enforcement off", off))
    print(summary("chat call, enforcement on", on))
    added50 = (pct(on, 0.5) - pct(off, 0.5)) * 1000
    added99 = (pct(on, 0.99) - pct(off, 0.99)) * 1000
    print(f"\nadded by the pre-flight check: p50 {added50:.3f} ms, p99 {added99:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
