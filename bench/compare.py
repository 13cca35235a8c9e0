"""Gateway overhead side by side: direct calls, a bare aiohttp pass-through, AgentWatch, LiteLLM.

One command, one run, one fake upstream (its own process) for every target:

    .venv/bin/python bench/compare.py [--latency-ms 0] [--rates 50,100,250,500,1000,2000]
                                      [--seconds 8] [--targets direct,bare,agentwatch,litellm]
                                      [--stream] [--baseline OTHER/.venv/bin/agentwatch]

For each target it measures open-loop latency at each fixed rate (bench/loadgen, latency from
the scheduled send time) and the maximum sustained throughput with 50 concurrent clients,
then prints a Markdown table, writes bench/out/compare-*.json and a PNG plot of p99 latency
against rate. AgentWatch runs as one gateway process with budgets and event emission on
(a real Kafka broker: KAFKA_BOOTSTRAP_SERVERS, or one started for the run). LiteLLM
(`litellm[proxy]`, no database) is installed into .cache/litellm-venv on first use.

Everything listens on 127.0.0.1, every load is bounded in time, and every process started
here is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docker"))
import localstack  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from services.common.session_state import changelog_topic  # noqa: E402
from services.common.topics import Topics, ensure_topics  # noqa: E402

PY = str(ROOT / ".venv" / "bin" / "python")
AGENTWATCH = str(ROOT / ".venv" / "bin" / "agentwatch")
LITELLM_VENV = ROOT / ".cache" / "litellm-venv"
LOADGEN = ROOT / ".cache" / "bin" / "loadgen"
OUT = ROOT / "bench" / "out"
MODEL = "gpt-4o-mini"
BODY = {
    "model": MODEL,
    "messages": [
        {"role": "system", "content": "You are a careful coding agent."},
        {"role": "user", "content": "The test suite failed with AssertionError in test_budget. Fix it."},
    ],
    "max_tokens": 64,
}


@dataclass
class Target:
    name: str
    url: str
    headers: list[str] = field(default_factory=list)
    vary_header: str | None = None
    pid: int | None = None


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid


def build_loadgen() -> Path:
    if shutil.which("go") is None:
        raise SystemExit("error: Go is needed to build bench/loadgen (it is on this machine kind by default)")
    LOADGEN.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["go", "build", "-o", str(LOADGEN), "."], cwd=ROOT / "bench" / "loadgen", check=True)
    return LOADGEN


def ensure_litellm() -> Path:
    exe = LITELLM_VENV / "bin" / "litellm"
    if not exe.exists():
        print("installing litellm[proxy] into .cache/litellm-venv (first run only)…", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run([str(LITELLM_VENV / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True)
    return exe


@contextmanager
def process(name: str, args: list[str], env: dict[str, str], port: int, workdir: Path) -> Iterator[Proc]:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            args,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            start_new_session=True,
        )
    proc = Proc(name, popen, log)
    try:
        localstack.wait_for_port(port, 120.0, name, pid=popen.pid, log=log)
        yield proc
    finally:
        localstack.stop_pid(popen.pid, timeout=15.0)


def rss_mb(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    return out


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(target: Target, loadgen: Path, body: Path, **kw: Any) -> dict[str, Any]:
    """run_load, plus the proxy process's CPU time per answered request: a figure that a busy
    machine moves far less than latency or throughput (neighbours take cores, not our cycles)."""
    before = cpu_seconds(target.pid) if target.pid else None
    r = run_load(loadgen, target, body, **kw)
    after = cpu_seconds(target.pid) if target.pid else None
    served = r.get("sent", 0) + r.get("warmup_sent", 0)  # the warm-up's requests cost CPU too
    if before is not None and after is not None and served:
        r["cpu_us_per_req"] = round((after - before) / served * 1e6, 1)
    return r


def run_load(
    loadgen: Path,
    target: Target,
    body: Path,
    *,
    rate: float | None,
    seconds: float,
    connections: int = 50,
    vary_count: int = 1000,
    stream: bool = False,
) -> dict[str, Any]:
    args = [
        str(loadgen),
        "-url",
        target.url,
        "-body",
        str(body),
        "-duration",
        f"{seconds}s",
        "-connections",
        str(connections),
        "-warmup",
        "1s",
        "-timeout",
        "30s",
    ]
    if rate:
        args += ["-rate", str(rate)]
    if stream:
        args.append("-stream")
    for h in target.headers:
        args += ["-H", h]
    if target.vary_header:
        args += ["-vary-header", target.vary_header, "-vary-count", str(vary_count)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"loadgen failed for {target.name}: {r.stderr.strip()}")
    result: dict[str, Any] = json.loads(r.stdout)
    return result


def settle(target: Target, body: Path, within_s: float = 120.0) -> None:
    """Wait until a target overloaded by the previous measurement has worked off its backlog
    (a proxy keeps serving requests whose clients timed out), so the next one starts clean."""
    headers = dict(h.split(": ", 1) for h in target.headers)
    if target.vary_header:
        name, fmt = target.vary_header.split(": ", 1)
        headers[name] = fmt % 0
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        try:
            req = urllib.request.Request(target.url, data=body.read_bytes(), headers=headers)
            urllib.request.urlopen(req, timeout=30).read()
        except OSError:
            pass
        if time.monotonic() - t0 < 0.5:
            return
        time.sleep(1.0)


def healthy(result: dict[str, Any], rate: float) -> bool:
    """A rate the target sustains: nearly everything answered OK and on schedule."""
    return result["ok"] >= 0.97 * rate * result["duration_s"] and result["latency_ms"].get("p99", 1e9) < 1000


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("AGENTWATCH_", "OPENAI", "ANTHROPIC"))}


def start_upstream(stack: ExitStack, work: Path, latency_ms: float) -> str:
    port = localstack.free_port()
    args = [PY, "-m", "tests.fakes.upstream", "--port", str(port), "--latency-ms", str(latency_ms), "--no-record"]
    stack.enter_context(process("upstream", args, _base_env(), port, work))
    return f"http://127.0.0.1:{port}/v1"


def direct_target(upstream: str) -> Target:
    return Target(
        "direct", f"{upstream}/chat/completions", ["Authorization: Bearer sk-direct", "Content-Type: application/json"]
    )


def start_bare(stack: ExitStack, work: Path, upstream: str) -> Target:
    port = localstack.free_port()
    args = [PY, str(ROOT / "bench" / "bare_proxy.py"), "--port", str(port), "--upstream", upstream]
    p = stack.enter_context(process("bare", args, _base_env(), port, work))
    return Target("bare", f"http://127.0.0.1:{port}/chat/completions", ["Content-Type: application/json"], pid=p.pid)


def kafka_bootstrap(stack: ExitStack, work: Path) -> str:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap:
        return bootstrap
    kafka = localstack.Kafka(work / "kafka", port=localstack.free_port(), controller_port=localstack.free_port())
    kafka.start()
    stack.callback(kafka.stop)
    return kafka.bootstrap


def agentwatch_env(bootstrap: str, port: int, upstream: str, work: Path, prefix: str) -> dict[str, str]:
    return {
        **_base_env(),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AGENTWATCH_PORT": str(port),
        "AGENTWATCH_OPENAI_BASE_URL": upstream,
        "OPENAI_API_KEY": "sk-bench-provider",
        "TENANT_TOKEN_MAP": json.dumps({"bench-token": "bench"}),
        "AGENTWATCH_TOPIC_PREFIX": prefix,
        "AGENTWATCH_SPOOL_DIR": str(work / "spool"),
        "AGENTWATCH_TENANT_POLICIES": json.dumps({"bench": {"default_budget_usd": "1000000"}}),
    }


def start_agentwatch(
    stack: ExitStack,
    work: Path,
    upstream: str,
    prefix: str | None = None,
    *,
    exe: str = AGENTWATCH,
    name: str = "agentwatch",
) -> Target:
    """One gateway process, budgets and event emission on. The budget workers' topics are
    created (the sessions changelog empty, or as filled by the caller) so that the gateway's
    replica is ready and its strict-mode client connected, and every call with a session id
    goes through the budget ledger, as in production; the budget workers themselves run
    elsewhere and are not part of the gateway's cost."""
    bootstrap = kafka_bootstrap(stack, work)
    prefix = prefix or f"bench{int(time.time())}."
    topics = Topics.with_prefix(prefix)
    asyncio.run(
        ensure_topics(bootstrap, [changelog_topic(prefix)], partitions=12, configs={"cleanup.policy": "compact"})
    )
    asyncio.run(ensure_topics(bootstrap, [topics.calls, topics.reservations, topics.reservation_decisions]))
    port = localstack.free_port()
    env = agentwatch_env(bootstrap, port, upstream, work, prefix)
    p = stack.enter_context(process(name, [exe, "gateway"], env, port, work))
    return Target(
        name,
        f"http://127.0.0.1:{port}/v1/proxy/openai/chat/completions",
        ["Authorization: Bearer bench-token", "Content-Type: application/json"],
        vary_header="X-AgentWatch-Session-Id: bench-session-%d",
        pid=p.pid,
    )


def start_litellm(stack: ExitStack, work: Path, upstream: str) -> Target:
    exe = ensure_litellm()
    port = localstack.free_port()
    cfg = work / "litellm.yaml"
    cfg.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {upstream}\n"
        "      api_key: sk-bench-provider\n"
        "litellm_settings:\n  telemetry: false\n  turn_off_message_logging: true\n"
    )
    env = {
        **_base_env(),
        "LITELLM_MASTER_KEY": "sk-litellm-master",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "DISABLE_SCHEMA_UPDATE": "true",
    }
    args = [str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    p = stack.enter_context(process("litellm", args, env, port, work))
    return Target(
        "litellm",
        f"http://127.0.0.1:{port}/v1/chat/completions",
        ["Authorization: Bearer sk-litellm-master", "Content-Type: application/json"],
        pid=p.pid,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="the fake upstream's latency")
    parser.add_argument("--rates", default="50,100,250,500,1000,2000")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each measurement")
    parser.add_argument("--targets", default="direct,bare,agentwatch,litellm")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument(
        "--baseline",
        metavar="AGENTWATCH_EXE",
        help="also run this agentwatch executable (e.g. another checkout's .venv/bin/agentwatch) as "
        "target 'baseline', for before/after figures in the same run",
    )
    parser.add_argument("--stream", action="store_true", help="streamed chat completions: time to first byte and total")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r]
    wanted = [t for t in args.targets.split(",") if t]
    loadgen = build_loadgen()
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="aw-bench-"))
    work.chmod(0o755)
    body = work / "body.json"
    body.write_text(json.dumps({**BODY, "stream": True} if args.stream else BODY))
    results: dict[str, Any] = {
        "machine": machine(),
        "latency_ms": args.latency_ms,
        "stream": args.stream,
        "command": " ".join(["bench/compare.py", *sys.argv[1:]]),
        "load_average": os.getloadavg(),
        "targets": {},
    }

    with ExitStack() as stack:
        upstream = start_upstream(stack, work, args.latency_ms)
        starters = {
            "direct": lambda: direct_target(upstream),
            "bare": lambda: start_bare(stack, work, upstream),
            "agentwatch": lambda: start_agentwatch(stack, work, upstream),
            "litellm": lambda: start_litellm(stack, work, upstream),
        }
        targets = [starters[name]() for name in wanted]
        if args.baseline:
            targets.append(start_agentwatch(stack, work, upstream, exe=args.baseline, name="baseline"))

        for target in targets:
            print(f"== {target.name}", flush=True)
            per_rate: list[dict[str, Any]] = []
            for rate in rates:
                r = measure(target, loadgen, body, rate=rate, seconds=args.seconds, stream=args.stream)
                per_rate.append(r)
                print(
                    f"  {rate:>6.0f}/s  ok={r['ok']:<6} p50={r['latency_ms'].get('p50')} "
                    f"p99={r['latency_ms'].get('p99')} ms cpu/req={r.get('cpu_us_per_req', '—')} µs"
                    + (
                        f" ttft p50={r['ttft_ms'].get('p50')} p99={r['ttft_ms'].get('p99')}" if r.get("ttft_ms") else ""
                    ),
                    flush=True,
                )
                if not healthy(r, rate):
                    settle(target, body)
                    break
            peak = measure(target, loadgen, body, rate=None, seconds=args.seconds, stream=args.stream)
            print(f"  max: {peak['achieved_rps']:.0f}/s (50 clients)", flush=True)
            results["targets"][target.name] = {
                "rates": per_rate,
                "max": peak,
                "rss_mb": rss_mb(target.pid) if target.pid else {},
            }

    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_json = OUT / f"compare-{stamp}.json"
    out_json.write_text(json.dumps(results, indent=2))
    print(render(results))
    if not args.no_plot:
        plot(results, OUT / f"compare-{stamp}.png")
    print(f"raw figures: {out_json}")
    return 0


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    return {"cpu": cpu, "cores": str(os.cpu_count()), "python": sys.version.split()[0]}


def render(results: dict[str, Any]) -> str:
    t = results["targets"]
    direct = {r["target_rate"]: r for r in t.get("direct", {}).get("rates", [])}
    la = results.get("load_average")
    lines = [
        f"`{results.get('command', '')}` — {results['machine']['cpu']}, {results['machine']['cores']} cores, "
        f"upstream latency {results['latency_ms']} ms, load average at start " + (f"{la[0]:.2f}" if la else "?"),
        "",
        "| target | rate/s | ok/s | p50 ms | p99 ms | added p50 ms | added p99 ms | TTFT p50 / p99 ms | CPU µs/req |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, data in t.items():
        for r in data["rates"]:
            d = direct.get(r["target_rate"])
            lat = r["latency_ms"]
            add50 = add99 = "—"
            if d and name != "direct" and lat and d["latency_ms"]:
                add50 = f"{lat['p50'] - d['latency_ms']['p50']:.2f}"
                add99 = f"{lat['p99'] - d['latency_ms']['p99']:.2f}"
            ttft = r.get("ttft_ms") or {}
            lines.append(
                f"| {name} | {r['target_rate']:.0f} | {r['achieved_rps']:.0f} | {lat.get('p50', '—')} | "
                f"{lat.get('p99', '—')} | {add50} | {add99} | {ttft.get('p50', '—')} / {ttft.get('p99', '—')} | "
                f"{r.get('cpu_us_per_req', '—')} |"
            )
    lines += ["", "| target | max throughput (50 clients) | CPU µs/req | RSS MB (now / peak) |", "|---|---|---|---|"]
    for name, data in t.items():
        rss = data.get("rss_mb", {})
        lines.append(
            f"| {name} | {data['max']['achieved_rps']:.0f}/s | {data['max'].get('cpu_us_per_req', '—')} | "
            f"{rss.get('VmRSS', '—')} / {rss.get('VmHWM', '—')} |"
        )
    aw = t.get("agentwatch", {}).get("max", {}).get("achieved_rps")
    for other in ("litellm", "bare", "direct"):
        o = t.get(other, {}).get("max", {}).get("achieved_rps")
        if aw and o:
            lines.append(f"\nAgentWatch / {other} max throughput: {aw / o:.2f}x")
    lines.append(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install -e '.[bench]'): no plot")
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, data in results["targets"].items():
        xs = [r["target_rate"] for r in data["rates"] if r["latency_ms"]]
        ys = [r["latency_ms"]["p99"] for r in data["rates"] if r["latency_ms"]]
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xlabel("offered rate (requests/s, open loop)")
    ax.set_ylabel("p99 latency (ms)")
    ax.set_yscale("log")
    ax.set_title(f"p99 latency vs rate (upstream latency {results['latency_ms']} ms)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


if __name__ == "__main__":
    sys.exit(main())
