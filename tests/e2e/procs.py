"""Run an AgentWatch service (or the fake upstream) as a process for end-to-end tests.

``ServiceProcess`` starts a command with a given environment in its own session, waits until
an HTTP readiness path answers 200, and stops exactly that PID (SIGTERM, then SIGKILL), or
kills it outright (``kill()``) for crash tests. Output goes to a log file whose tail is shown
when start-up fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docker"))

import localstack  # noqa: E402


def agentwatch_bin() -> str:
    cand = ROOT / ".venv" / "bin" / "agentwatch"
    return str(cand) if cand.exists() else "agentwatch"


@dataclass
class ServiceProcess:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    port: int
    log_path: Path
    ready_path: str | None = "/healthz"
    # For a process without an HTTP endpoint: ready once its log shows this text.
    ready_log: str | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                list(self.argv),
                env=dict(self.env),
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited during start-up: {self.log_tail()}")
            if self.ready_log is not None:
                if self.ready_log in self.log_text():
                    return
                time.sleep(0.1)
                continue
            if self.ready_path is None:
                localstack.wait_for_port(self.port, timeout, self.name, pid=self.pid, log=self.log_path)
                return
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready on {self.url} within {timeout:.0f}s: {self.log_tail()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 15) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, no clean-up."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def fake_upstream(port: int, log_dir: Path, latency_ms: float = 0.0, record: bool = True) -> ServiceProcess:
    argv = [sys.executable, "-m", "tests.fakes.upstream", "--port", str(port), "--latency-ms", str(latency_ms)]
    if not record:
        argv.append("--no-record")
    return ServiceProcess("fake-upstream", argv, dict(os.environ), port, log_dir / f"fake-upstream-{port}.log")


def gateway(port: int, log_dir: Path, env: Mapping[str, str]) -> ServiceProcess:
    full = {**os.environ, **env, "AGENTWATCH_PORT": str(port)}
    return ServiceProcess("gateway", [agentwatch_bin(), "gateway"], full, port, log_dir / f"gateway-{port}.log")


def free_port() -> int:
    return localstack.free_port()
