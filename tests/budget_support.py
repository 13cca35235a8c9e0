"""Budget worker processes for integration and e2e tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import localstack  # conftest puts docker/ on the path
import pytest

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class BudgetWorkers:
    """Real budget worker processes (`agentwatch budget`), each with its own web port and data dir."""

    tmp: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> subprocess.Popen[bytes]:
        data = self.tmp / f"budget-{name}"
        data.mkdir(parents=True, exist_ok=True)
        env = self.env | {
            "AGENTWATCH_BUDGET_WEB_PORT": str(localstack.free_port()),
            "AGENTWATCH_BUDGET_DATA_DIR": str(data),
        }
        log = (self.tmp / f"budget-{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "budget"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        self.procs[name] = proc
        return proc

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            localstack.stop_pid(proc.pid, timeout=15)
            proc.wait(timeout=5)
        self.procs.clear()


@pytest.fixture
def budget_workers(kafka_bootstrap: str, topic_prefix: str, tmp_root: Path) -> Iterator[BudgetWorkers]:
    env = dict(os.environ) | {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "AGENTWATCH_TOPIC_PREFIX": topic_prefix,
        "AGENTWATCH_TOPIC_PARTITIONS": "4",
        "AGENTWATCH_BUDGET_SESSION_TIMEOUT_S": "6",
        "AGENTWATCH_BUDGET_COMMIT_INTERVAL_S": "0.5",
    }
    workers = BudgetWorkers(tmp_root / topic_prefix.rstrip("."), env)
    try:
        yield workers
    finally:
        workers.stop_all()
