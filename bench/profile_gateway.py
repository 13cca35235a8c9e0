"""Profile the gateway's hot path under load with py-spy.

Starts the fake upstream and one gateway process (the same way `bench/compare.py` does),
drives the gateway with bench/loadgen in closed loop (50 clients) while `py-spy record`
samples it, then prints the functions with the most samples (self and inclusive) and
writes a flame graph SVG to bench/out/.

    .venv/bin/pip install py-spy
    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python bench/profile_gateway.py \
        [--seconds 10] [--stream] [--rate R]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare


def top(collapsed: Path, n: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        k = int(count)
        total += k
        frames = stack.split(";")
        own[frames[-1]] += k
        for f in set(frames):
            incl[f] += k
    out = [f"{total} samples", "", "self %  function"]
    out += [f"{100 * c / total:5.1f}  {f}" for f, c in own.most_common(n)]
    out += ["", "incl %  function"]
    out += [f"{100 * c / total:5.1f}  {f}" for f, c in incl.most_common(n)]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--stream", action="store_true", help="streamed chat completions")
    parser.add_argument("--exe", default=compare.AGENTWATCH, help="agentwatch executable (another checkout's)")
    parser.add_argument("--rate", type=float, default=None, help="open loop at this rate (default: 50 clients)")
    args = parser.parse_args()
    pyspy = Path(compare.PY).parent / "py-spy"
    if not pyspy.exists():
        raise SystemExit("error: py-spy is not installed: .venv/bin/pip install py-spy")
    loadgen = compare.build_loadgen()
    compare.OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="aw-profile-"))
    body = work / "body.json"
    body.write_text(json.dumps({**compare.BODY, "stream": True} if args.stream else compare.BODY))
    with ExitStack() as stack:
        upstream = compare.start_upstream(stack, work, 0.0)
        target = compare.start_agentwatch(stack, work, upstream, exe=args.exe)
        assert target.pid is not None
        result: dict[str, object] = {}

        def load() -> None:
            result.update(
                compare.measure(target, loadgen, body, rate=args.rate, seconds=args.seconds + 2, stream=args.stream)
            )

        t = threading.Thread(target=load)
        t.start()
        time.sleep(1.5)  # past the load generator's warm-up
        # The collapsed stacks also feed flamegraph tools (inferno, speedscope).
        raw = compare.OUT / f"profile-{time.strftime('%Y%m%d-%H%M%S')}.txt"
        cmd = [str(pyspy), "record", "--pid", str(target.pid), "--duration", str(int(args.seconds))]
        cmd += ["--rate", "200", "--format", "raw", "--output", str(raw), "--nonblocking"]
        subprocess.run(cmd, check=True, capture_output=True)
        t.join()
        print(
            f"throughput while sampled: {result.get('achieved_rps', 0):.0f} req/s, "
            f"gateway CPU {result.get('cpu_us_per_req', '?')} µs/req, load average {os.getloadavg()[0]:.2f}"
        )
        print(top(raw, args.top))
        print(f"collapsed stacks: {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
