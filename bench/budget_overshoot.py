"""Two gateways, two budget workers, one session budget: how far past the budget does it go?

Each "gateway" here is the budget half of a gateway process: a SessionReplica of the
changelog, a BudgetLedger (fast mode) or StrictReservations client (strict mode), and a
producer emitting CallStarted / CallFinished as the proxy does (enqueued, not awaited, with
the emitter's linger). --clients per gateway start together and loop admit -> upstream call
of --call-ms (or uniformly --call-ms-min..--call-ms-max) -> settle until refused. Every call
costs --cost, equal to its reservation. Spent is read back from the table (the replica)
once all is folded. Fast mode runs with each gateway's share of the budget (--share 2, the
gateways' AGENTWATCH_BUDGET_FAST_GATEWAYS) and, for comparison, without (--share 1).

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python bench/budget_overshoot.py --clients 10 --call-ms 50
    # the acceptance's shape: 50 clients split over two gateways, $1.00, $0.10 a call, 0.5-2 s calls
    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python bench/budget_overshoot.py --clients 25 \
        --cost 0.10 --call-ms-min 500 --call-ms-max 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

from aiokafka import AIOKafkaProducer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.common.config import TenantPolicy  # noqa: E402
from services.common.events import CallFinished, CallStarted, ReservationRequest, encode, new_id  # noqa: E402
from services.common.session_state import changelog_topic  # noqa: E402
from services.common.topics import Topics, ensure_topics  # noqa: E402
from services.gateway.budget import BudgetLedger, Reservation  # noqa: E402
from services.gateway.replica import SessionReplica  # noqa: E402
from services.gateway.strict import StrictReservations  # noqa: E402

BUDGET = Decimal("1.00")


class Gateway:
    def __init__(self, bootstrap: str, topics: Topics, prefix: str, gid: str, linger_ms: int) -> None:
        self.topics = topics
        self.gid = gid
        self.replica = SessionReplica(bootstrap, changelog_topic(prefix))
        self.ledger = BudgetLedger(self.replica)
        # Seconds each call spent being admitted (fast: the share's wait; strict: the round trip).
        self.admit_s: list[float] = []
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=linger_ms
        )
        self.strict = StrictReservations(
            bootstrap,
            requests_topic=topics.reservations,
            decisions_topic=topics.reservation_decisions,
            gateway_id=gid,
            send=self.send,
        )

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        await self.producer.send_and_wait(topic, value, key=key)

    async def emit(self, topic: str, key: bytes, value: bytes) -> None:
        # The proxy's emit: queued for the producer, never awaited by the call.
        await self.producer.send(topic, value, key=key)

    async def start(self) -> None:
        await self.producer.start()
        await self.replica.start()
        await self.strict.start()
        await self.strict.wait_listening(60)
        await self.replica.wait_ready(120)

    async def stop(self) -> None:
        await self.strict.stop()
        await self.replica.stop()
        await self.producer.stop()

    async def call(
        self, tenant: str, session: str, cost: Decimal, call_ms: float, *, strict: bool, wait_s: float = 1.0
    ) -> bool:
        call_id = new_id()
        t0 = time.perf_counter()
        if strict:
            req = ReservationRequest(
                tenant=tenant,
                session_id=session,
                call_id=call_id,
                amount_usd=cost,
                budget_usd=BUDGET,
                gateway_id=self.gid,
            )
            decision = await self.strict.reserve(req, within_s=10)
            if decision is None or not decision.granted:
                return False
        else:
            r = await self.ledger.admit_within(
                tenant=tenant,
                session_id=session,
                call_id=call_id,
                amount_usd=cost,
                requested_budget_usd=BUDGET,
                policy=TenantPolicy(),
                wait_s=wait_s,
            )
            if not isinstance(r, Reservation):
                return False
        self.admit_s.append(time.perf_counter() - t0)
        common = {"tenant": tenant, "session_id": session, "call_id": call_id, "provider": "openai", "endpoint": "x"}
        started = CallStarted(**common, reserved_usd=cost, budget_usd=BUDGET)  # type: ignore[arg-type]
        await self.emit(self.topics.calls, started.key, encode(started))
        await asyncio.sleep(call_ms / 1000)
        finished = CallFinished(**common, status_code=200, cost_usd=cost, reserved_usd=cost)  # type: ignore[arg-type]
        if not strict:
            self.ledger.settle(r, cost)
        await self.emit(self.topics.calls, finished.key, encode(finished))
        return True


async def run_mode(gateways: list[Gateway], strict: bool, args: argparse.Namespace) -> tuple[int, Decimal]:
    tenant, session = "bench", f"{'strict' if strict else 'fast'}-{uuid.uuid4().hex[:6]}"
    cost = Decimal(args.cost)
    admitted = 0
    rng = random.Random()

    def duration() -> float:
        if args.call_ms_max is None:
            return float(args.call_ms)
        return rng.uniform(args.call_ms_min, args.call_ms_max)

    async def client(g: Gateway) -> None:
        nonlocal admitted
        for _ in range(100):
            if not await g.call(tenant, session, cost, duration(), strict=strict, wait_s=args.wait_s):
                return
            admitted += 1

    await asyncio.gather(*(client(g) for g in gateways for _ in range(args.clients)))
    key = f"{tenant}/{session}".encode()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        s = gateways[0].replica.get(key)
        if s is not None and s.calls == admitted and not s.in_flight:
            return admitted, s.spent_usd
        await asyncio.sleep(0.1)
    s = gateways[0].replica.get(key)
    raise SystemExit(f"the table never reflected every call: admitted {admitted}, table {s}")


async def main(args: argparse.Namespace) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    topics = Topics.with_prefix(prefix)
    await ensure_topics(
        bootstrap, (topics.calls, topics.controls, topics.reservations, topics.reservation_decisions), partitions=4
    )
    data = Path(tempfile.mkdtemp(prefix="aw-bench-overshoot-"))
    workers = []
    for i in range(2):
        env = dict(os.environ) | {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "AGENTWATCH_TOPIC_PREFIX": prefix,
            "AGENTWATCH_TOPIC_PARTITIONS": "4",
            "AGENTWATCH_BUDGET_WEB_PORT": str(args.web_port + i),
            "AGENTWATCH_BUDGET_DATA_DIR": str(data / f"w{i}"),
        }
        log = (data / f"w{i}.log").open("wb")
        workers.append(
            subprocess.Popen(  # noqa: ASYNC220 (started once, before the timed part)
                [sys.executable, "-m", "services.cli", "budget"], env=env, cwd=ROOT, stdout=log, stderr=log
            )
        )
    gateways = [Gateway(bootstrap, topics, prefix, f"gw{i}", args.linger_ms) for i in range(2)]
    try:
        for g in gateways:
            await g.start()
        # Warm up until both workers answer (group joined, partitions assigned).
        ok = 0
        deadline = time.monotonic() + 120
        while ok < 8 and time.monotonic() < deadline:
            ok = ok + 1 if await gateways[ok % 2].call("warm", new_id(), Decimal("0.01"), 0, strict=True) else 0
        print(f"load average: {os.getloadavg()}", flush=True)
        ranged = args.call_ms_max is not None
        shape = f"{args.call_ms_min:.0f}-{args.call_ms_max:.0f} ms" if ranged else f"{args.call_ms} ms"
        modes = [("fast", share) for share in args.share] + [("strict", 0)]
        for mode, share in modes:
            for g in gateways:
                g.ledger.gateways = max(1, share)
            overs = []
            for g in gateways:
                g.admit_s.clear()
            for _ in range(args.rounds):
                n, spent = await run_mode(gateways, mode == "strict", args)
                over = max(Decimal(0), spent - BUDGET)
                overs.append(int(over / Decimal(args.cost)))
                label = f"fast share {share}" if mode == "fast" else "strict"
                print(
                    f"{label:13}: 2 gateways x {args.clients} clients, calls {shape}, cost ${args.cost}, "
                    f"budget ${BUDGET}: admitted {n} calls, spent ${spent}, overshoot ${over} "
                    f"({overs[-1]} calls)",
                    flush=True,
                )
            waits = sorted(w * 1000 for g in gateways for w in g.admit_s)
            print(
                f"  -> overshoot in calls over {args.rounds} rounds: {overs}; admission of admitted calls "
                f"p50 {waits[len(waits) // 2]:.1f} ms, p90 {waits[int(len(waits) * 0.9)]:.1f} ms, "
                f"max {waits[-1]:.1f} ms",
                flush=True,
            )
        print(f"load average: {os.getloadavg()}")
    finally:
        for g in gateways:
            await g.stop()
        for w in workers:
            w.terminate()
            w.wait(timeout=30)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=10, help="concurrent clients per gateway")
    p.add_argument("--call-ms", type=float, default=50)
    p.add_argument("--call-ms-min", type=float, default=500)
    p.add_argument("--call-ms-max", type=float, default=None, help="with it, call durations are uniform min..max")
    p.add_argument("--cost", default="0.01")
    p.add_argument("--share", type=int, nargs="+", default=[2, 1], help="fast mode's gateways setting(s) to run")
    p.add_argument("--wait-s", type=float, default=1.0, help="fast mode: longest wait of a call over its share")
    p.add_argument("--linger-ms", type=int, default=20, help="the gateway emitter's linger")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--web-port", type=int, default=16110)
    asyncio.run(main(p.parse_args()))
