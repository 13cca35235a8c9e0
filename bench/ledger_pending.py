"""Admission cost per call (admit + settle) on one session holding N local entries the table
does not reflect (the budget workers down or behind: entries pile up for forget_after_s).

Uses the real BudgetLedger over a real SessionReplica (filled directly with the session's
folded state and marked caught up; no broker: the ledger never leaves the process). The
pending entries are settled calls no table reflects, put in place directly (admitting 100,000
through a ledger that scans them all would take hours). Each measured call is then a real
``admit`` (budget checked) and ``settle`` on that session, so the pending set grows by one
per call, as it does in an outage.

With --lagging the workers are behind instead of down: after each measured call the table
folds the oldest pending call (its start and end, the changelog record applied to the
replica outside the timed part), so the session keeps N pending entries and its table state
changes on every call.

    .venv/bin/python bench/ledger_pending.py                      # this checkout's ledger
    .venv/bin/python bench/ledger_pending.py --root /work/main    # another checkout's (before)
    .venv/bin/python bench/ledger_pending.py --lagging            # workers behind, not down
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import deque
from decimal import Decimal
from pathlib import Path
from typing import Any


def load(root: Path) -> dict[str, Any]:
    sys.path.insert(0, str(root))
    from services.common.config import TenantPolicy
    from services.common.events import CallFinished, CallStarted
    from services.common.session_state import encode_state, fold
    from services.gateway import budget
    from services.gateway.replica import SessionReplica

    return {
        "TenantPolicy": TenantPolicy,
        "CallStarted": CallStarted,
        "CallFinished": CallFinished,
        "encode_state": encode_state,
        "fold": fold,
        "budget": budget,
        "SessionReplica": SessionReplica,
    }


def fill_pending(m: dict[str, Any], ledger: Any, key: bytes, n: int, now: float) -> None:
    """``n`` settled, unreflected calls on ``key``, in whichever layout this checkout's ledger keeps."""
    try:
        from services.gateway.budget_local import LocalEntry, SessionLocal
    except ImportError:
        local_cls = m["budget"]._Local
        ledger._local[key] = {f"p{i}": local_cls(Decimal("0.10"), now, Decimal("0.01"), True) for i in range(n)}
        return
    session = ledger._local[key] = SessionLocal()
    for i in range(n):
        session.add(f"p{i}", LocalEntry(Decimal("0.10"), now, Decimal("0.01"), True))


def run(m: dict[str, Any], pending: int, max_calls: int, max_s: float, lagging: bool) -> tuple[int, list[float]]:
    replica = m["SessionReplica"]("127.0.0.1:1", "unused", admission_fields_only=True)
    key = b"alpha/busy"
    state, _ = m["fold"](
        None,
        m["CallStarted"](
            tenant="alpha",
            session_id="busy",
            call_id="seed",
            provider="openai",
            endpoint="chat",
            reserved_usd=Decimal("0.10"),
            budget_usd=Decimal("1000000"),
        ),
    )
    replica._apply(key, m["encode_state"](state))
    replica._ready.set()
    ledger = m["budget"].BudgetLedger(replica)
    fill_pending(m, ledger, key, pending, time.monotonic())
    policy = m["TenantPolicy"]()
    per_call: list[float] = []
    unfolded = deque(f"p{i}" for i in range(pending))
    deadline = time.perf_counter() + max_s
    for i in range(max_calls):
        t0 = time.perf_counter()
        r = ledger.admit(
            tenant="alpha",
            session_id="busy",
            call_id=f"c{i}",
            amount_usd=Decimal("0.10"),
            requested_budget_usd=None,
            policy=policy,
        )
        assert isinstance(r, m["budget"].Reservation), r
        ledger.settle(r, Decimal("0.01"))
        per_call.append(time.perf_counter() - t0)
        unfolded.append(r.call_id)
        if lagging:
            state = fold_one(m, state, unfolded.popleft())
            replica._apply(key, m["encode_state"](state))
        if time.perf_counter() > deadline:
            break
    view = ledger.view("alpha", "busy", policy)
    expected = Decimal("0.01") * (pending + len(per_call))
    assert view.spent_usd == expected, (view.spent_usd, expected)
    return len(per_call), per_call


def fold_one(m: dict[str, Any], state: Any, call_id: str) -> Any:
    common = {"tenant": "alpha", "session_id": "busy", "call_id": call_id, "provider": "openai", "endpoint": "chat"}
    state, _ = m["fold"](state, m["CallStarted"](**common, reserved_usd=Decimal("0.10")))
    state, _ = m["fold"](state, m["CallFinished"](**common, status_code=200, cost_usd=Decimal("0.01")))
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--pending", type=int, nargs="+", default=[0, 1_000, 100_000])
    parser.add_argument("--calls", type=int, default=20_000, help="measured calls per size (at most)")
    parser.add_argument("--max-s", type=float, default=5.0, help="stop a size after this long")
    parser.add_argument("--lagging", action="store_true", help="the table folds one old call per call")
    args = parser.parse_args()
    m = load(args.root.resolve())
    mode = "workers behind (one old call folded per call)" if args.lagging else "workers down (nothing folded)"
    print(f"ledger from {args.root} ({m['budget'].__file__}), {mode}; load average {os.getloadavg()}")
    for pending in args.pending:
        calls, per_call = run(m, pending, args.calls, args.max_s, args.lagging)
        us = [t * 1e6 for t in per_call]
        print(
            f"pending {pending:>7}: {calls:>6} calls, admit+settle median {statistics.median(us):9.1f} us, "
            f"mean {statistics.fmean(us):9.1f} us, p99 {sorted(us)[int(0.99 * (len(us) - 1))]:9.1f} us"
        )
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
