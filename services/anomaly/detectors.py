"""Runaway-loop detectors: pure functions of a session's window and the tenant's thresholds.

Each returns a ``Finding`` (what fired and the numbers that fired it) or ``None``. They never
look at the clock, the broker or the configuration source, so they are tested at their
boundaries without any service, and replaying the same events gives the same findings.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from services.anomaly.state import SessionState
from services.common.config import DetectorThresholds
from services.common.events import Severity

CONTEXT_GROWTH = "context_growth"
VELOCITY = "velocity"
REPETITION = "repetition"
SPEND_VELOCITY = "spend_velocity"
ERROR_LOOP = "error_loop"
EARLY_WARNING = "early_warning"


@dataclass(frozen=True, slots=True)
class Finding:
    detector: str
    severity: Severity
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


def context_growth(state: SessionState, t: DetectorThresholds) -> Finding | None:
    """K consecutive iterations each with input tokens > factor x the previous one's."""
    k = t.growth_iterations
    tail = state.window[-(k + 1) :]
    if len(tail) < k + 1:
        return None
    factor = Decimal(str(t.growth_factor))
    tokens = [e.input_tokens for e in tail]
    for prev, cur in itertools.pairwise(tokens):
        # Integers against an exact decimal factor: 140 tokens after 100 is not > 1.4x.
        if prev <= 0 or Decimal(cur) <= factor * prev:
            return None
    ratios = [round(cur / prev, 3) for prev, cur in itertools.pairwise(tokens)]
    return Finding(
        CONTEXT_GROWTH,
        "high",
        f"input tokens grew more than {t.growth_factor}x on {k} consecutive iterations",
        {"input_tokens": tokens, "ratios": ratios, "growth_factor": t.growth_factor, "iterations": k},
    )


def velocity(state: SessionState, t: DetectorThresholds) -> Finding | None:
    """More than X calls within the last minute of the session's own event time."""
    calls = len(state.recent)
    if calls <= t.max_calls_per_minute:
        return None
    return Finding(
        VELOCITY,
        "warning",
        f"{calls} calls in the last minute (limit {t.max_calls_per_minute})",
        {"calls_last_minute": calls, "max_calls_per_minute": t.max_calls_per_minute},
    )


def repetition(state: SessionState, t: DetectorThresholds) -> Finding | None:
    """The latest request fingerprint seen R times (or more) within the window."""
    if not state.window or state.window[-1].fingerprint is None:
        return None
    fp = state.window[-1].fingerprint
    count = sum(1 for e in state.window if e.fingerprint == fp)
    if count < t.repetition_count:
        return None
    return Finding(
        REPETITION,
        "high",
        f"the same request was sent {count} times in the last {len(state.window)} iterations",
        {"fingerprint": fp, "count": count, "window": len(state.window), "repetition_count": t.repetition_count},
    )


def spend_velocity(state: SessionState, t: DetectorThresholds) -> Finding | None:
    """More than $Y spent within the last minute."""
    spent = sum((e.cost_usd for e in state.recent if e.cost_usd is not None), Decimal(0))
    if spent <= t.max_usd_per_minute:
        return None
    return Finding(
        SPEND_VELOCITY,
        "high",
        f"${spent} spent in the last minute (limit ${t.max_usd_per_minute})",
        {"usd_last_minute": str(spent), "max_usd_per_minute": str(t.max_usd_per_minute)},
    )


def error_loop(state: SessionState, t: DetectorThresholds) -> Finding | None:
    """E consecutive upstream errors."""
    if state.consecutive_errors < t.error_loop_count:
        return None
    statuses = [e.status_code for e in state.window[-state.consecutive_errors :]]
    return Finding(
        ERROR_LOOP,
        "high",
        f"{state.consecutive_errors} consecutive upstream errors",
        {
            "consecutive_errors": state.consecutive_errors,
            "status_codes": statuses,
            "error_loop_count": t.error_loop_count,
        },
    )


def project_spend(last_cost: Decimal, growth: Decimal, iterations: int) -> list[Decimal]:
    """Cumulative spend of the next ``iterations`` calls if each costs ``growth`` x the previous."""
    out: list[Decimal] = []
    total, cost = Decimal(0), last_cost
    for _ in range(iterations):
        cost *= growth
        total += cost
        out.append(total)
    return out


def early_warning(state: SessionState, t: DetectorThresholds) -> Finding | None:
    """At the current per-call cost growth, the session budget runs out within M iterations."""
    if state.budget_usd is None:
        return None
    costs = [e.cost_usd for e in state.window if e.ok and e.cost_usd is not None and e.cost_usd > 0]
    if not costs:
        return None
    last = costs[-1]
    # A shrinking cost is projected flat: the warning errs on the side of telling.
    growth = max(Decimal(1), last / costs[-2]) if len(costs) >= 2 else Decimal(1)
    remaining = state.budget_usd - state.spent_usd
    cumulative = project_spend(last, growth, t.early_warning_iterations)
    left = next((i for i, c in enumerate(cumulative) if c >= remaining), None)
    if remaining > 0 and left is None:
        return None
    iterations_left = 0 if remaining <= 0 else left
    return Finding(
        EARLY_WARNING,
        "warning",
        f"at the current growth the budget runs out within {t.early_warning_iterations} iterations",
        {
            "remaining_usd": str(remaining),
            "last_cost_usd": str(last),
            "cost_growth": str(round(growth, 3)),
            "full_iterations_left": iterations_left,
            "early_warning_iterations": t.early_warning_iterations,
        },
    )


Detector = Callable[[SessionState, DetectorThresholds], Finding | None]
DETECTORS: tuple[Detector, ...] = (context_growth, velocity, repetition, spend_velocity, error_loop, early_warning)
# Early warning is a forecast, not evidence of a loop: it alerts but never pauses a session.
PAUSING = frozenset({CONTEXT_GROWTH, VELOCITY, REPETITION, SPEND_VELOCITY, ERROR_LOOP})


def run_all(state: SessionState, t: DetectorThresholds) -> list[Finding]:
    return [f for d in DETECTORS if (f := d(state, t)) is not None]
