"""Risk scanner throughput (MB of text per second on one core) and the inline guard's latency.

Run: .venv/bin/python bench/scanner_throughput.py [--mb 32] [--seconds 20]

The text is a realistic agent-traffic mix: prose, Python code, JSON tool results, log lines
full of look-alikes (UUIDs, sha hashes, ISO timestamps, order numbers, version strings, IPs)
and base64 blobs, with a PII value or a secret about every 2 KB. One process, one thread;
bounded by --mb and --seconds.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import statistics
import time
import uuid

from services.anomaly.risk.analyze import analyze
from services.anomaly.risk.guard import SecretGuard
from services.anomaly.risk.scanner import Scanner
from services.anomaly.risk.types import SECRET_TYPES
from services.common.config import TenantPolicy
from services.common.events import PayloadCaptured

R = random.Random(7)
PROSE = (
    "The agent retried the tool call after the upstream returned an error, then summarised the result "
    "for the user and asked whether the deployment should continue with the remaining services. "
)
CODE = (
    "def handler(event, context):\n    items = [x for x in event['records'] if x.get('status') == 'ok']\n"
    "    return {'count': len(items), 'ids': [i['id'] for i in items]}\n"
)
HITS = [
    "contact jane.roe@example.org",
    "call +1 415 555 0132",
    "card 4539 1488 0343 6467",
    "IBAN DE89 3704 0044 0532 0130 00",
    "ssn 536-22-8726",
    "host 10.24.8.17",
    "key AKIAZ3MQX7RT2WLE5YQN",
    "token ghp_Zq8Lw3Rt5Yv1Nb7Mk2Hj6Gf4Ds0AePxCuBiO",
]


def _log_line() -> str:
    return (
        f"2026-12-03T10:{R.randint(10, 59)}:{R.randint(10, 59)}.{R.randint(100, 999)}Z INFO req={uuid.uuid4()} "
        f"sha={R.randbytes(20).hex()} order=ORD-2026-{R.randint(0, 999999):06d} "
        f"v{R.randint(1, 9)}.{R.randint(0, 20)}.3 "
        f"client=192.0.2.{R.randint(1, 254)} latency_ms={R.randint(5, 900)}\n"
    )


def _tool_json() -> str:
    return json.dumps({"id": str(uuid.uuid4()), "total": R.randint(1, 10**6), "items": [R.random() for _ in range(5)]})


def corpus(size: int) -> str:
    parts: list[str] = []
    total = 0
    while total < size:
        kind = R.random()
        if kind < 0.4:
            s = PROSE
        elif kind < 0.6:
            s = CODE
        elif kind < 0.8:
            s = _log_line()
        elif kind < 0.95:
            s = _tool_json()
        else:
            s = base64.b64encode(R.randbytes(600)).decode()
        if R.random() < 0.08:
            s += " " + R.choice(HITS) + " "
        parts.append(s)
        total += len(s)
    return "".join(parts)


def bench_scan(text: str, seconds: float) -> tuple[float, float, int]:
    """MB/s per CPU-second (the per-core figure, immune to other load on a shared machine) and wall."""
    scanner = Scanner()
    chunk = 16_384  # payload-sized pieces: per-call overhead is part of the cost
    pieces = [text[i : i + chunk] for i in range(0, len(text), chunk)]
    for p in pieces[:50]:
        scanner.scan(p)  # RE2 builds its DFA lazily: warm it as a running worker would be
    done = 0
    found = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while time.perf_counter() - wall0 < seconds:
        for p in pieces:
            found += len(scanner.scan(p))
        done += len(text.encode())
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return done / cpu / 1e6, done / wall / 1e6, found


def bench_payload(text: str) -> float:
    scanner = Scanner()
    events = [
        PayloadCaptured(
            tenant="t",
            call_id=str(i),
            provider="openai",
            endpoint="chat/completions",
            request_body=json.dumps({"messages": [{"role": "user", "content": text[i : i + 8000]}]}),
            response_body=json.dumps({"choices": [{"message": {"content": text[i + 8000 : i + 12000]}}]}),
        )
        for i in range(0, min(len(text), 8_000_000) - 12000, 12000)
    ]
    size = sum(len(e.request_body) + len(e.response_body or "") for e in events)
    start = time.process_time()
    for e in events:
        analyze(e, scanner, SECRET_TYPES, b"salt")
    return size / (time.process_time() - start) / 1e6


def bench_guard(text: str) -> dict[int, tuple[float, float]]:
    guard = SecretGuard()
    policy = TenantPolicy(secret_guard=True)
    out: dict[int, tuple[float, float]] = {}
    for size in (1_000, 10_000, 100_000):
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": text[:size].replace("AKIA", "AKIX")}]}
        guard.check(body, policy, "openai")
        samples = []
        for _ in range(300 if size < 100_000 else 60):
            t = time.perf_counter()
            guard.check(body, policy, "openai")
            samples.append((time.perf_counter() - t) * 1e6)
        samples.sort()
        out[size] = (statistics.median(samples), samples[int(len(samples) * 0.99) - 1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=32.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    text = corpus(int(args.mb * 1e6))
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    cpu_mbps, wall_mbps, found = bench_scan(text, args.seconds)
    print(
        f"scanner: {cpu_mbps:.1f} MB per CPU-second on one core (wall {wall_mbps:.1f} MB/s; "
        f"{len(text) / 1e6:.0f} MB mix, 16 KB calls, {found} findings)"
    )
    print(f"payload analysis (JSON walk + scan + redaction): {bench_payload(text):.1f} MB per CPU-second")
    for size, (p50, p99) in bench_guard(text).items():
        print(f"guard on a {size // 1000} KB request: p50 {p50:.0f} us, p99 {p99:.0f} us")


if __name__ == "__main__":
    main()
