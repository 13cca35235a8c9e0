"""Settings of a budget worker; two workers on one machine differ by web port and data dir."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.common.config import CommonSettings


class BudgetSettings(CommonSettings):
    budget_web_port: int = Field(6066, ge=1, le=65535)
    budget_web_host: str = "127.0.0.1"
    budget_data_dir: Path = Path(".cache/budget")
    # How often consumed offsets are committed; state is deduplicated, so a shorter interval
    # only shortens what a restarted worker re-reads.
    budget_commit_interval_s: float = Field(1.0, gt=0)
    # A worker that dies without leaving the group holds its partitions this long before the
    # others take them over; short enough that a SIGKILLed worker's sessions move on quickly.
    budget_session_timeout_s: float = Field(30.0, ge=6)
    # Changelog records (and strict-mode decisions) wait this long to share a produce request.
    # 20-25 ms cut the worker's CPU per event in one run and not in the next (bench/RESULTS.md);
    # kept short since strict reservations wait this much longer for their decision.
    budget_producer_linger_ms: float = Field(5.0, ge=0)
    # Longest a broker holds a fetch with no new records; see services/budget/transport.py
    # for why it bounds the fold's lag under load.
    budget_fetch_max_wait_ms: int = Field(20, ge=1, le=1500)
