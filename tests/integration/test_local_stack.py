"""`make up` / `make down` and the one-line errors of the local stack."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import localstack
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "CLICKHOUSE_URL")
    }
    env.update(extra)
    return env


def _localstack_up(state: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``docker/localstack.py up``, which ``make up`` runs, for the cases that must fail in one line."""
    return subprocess.run(
        [sys.executable, str(ROOT / "docker/localstack.py"), "--state", str(state), "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _listening_ports(pids: set[int]) -> set[int]:
    """Ports in LISTEN state on this machine (from /proc), to prove nothing is left behind."""
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A":
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def _call_gateway(port: int, token: str) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/proxy/openai/chat/completions",
        data=json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_make_up_twice_then_down_leaves_nothing(tmp_root: Path) -> None:
    state = tmp_root / "make-up"
    ports = {
        "AGENTWATCH_KAFKA_PORT": localstack.free_port(),
        "AGENTWATCH_KAFKA_CONTROLLER_PORT": localstack.free_port(),
        "AGENTWATCH_PG_PORT": localstack.free_port(),
        **{svc.port_env: localstack.free_port() for svc in localstack.SERVICES if svc.port_env},
    }
    # A tenant token but no provider key, as on a fresh machine: calls get a clear refusal.
    env = _clean_env(**{k: str(v) for k, v in ports.items()}, TENANT_TOKEN_MAP='{"tok-smoke": "smoke"}')
    env.pop("OPENAI_API_KEY", None)
    make = ["make", "-s", "-C", str(ROOT), f"STACK_STATE={state}"]
    up = subprocess.run([*make, "up"], env=env, capture_output=True, text=True, timeout=400, check=False)
    pids: dict[str, int] = {}
    try:
        assert up.returncode == 0, up.stderr
        assert f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{ports['AGENTWATCH_KAFKA_PORT']}" in up.stdout
        assert f"127.0.0.1:{ports['AGENTWATCH_PG_PORT']}" in up.stdout
        assert f"gateway: http://127.0.0.1:{ports['AGENTWATCH_PORT']}" in up.stdout
        pids = localstack.Stack(state).running()
        assert set(pids) == {"kafka", "postgres", *(svc.name for svc in localstack.SERVICES)}, up.stdout
        assert all(localstack.pid_alive(pid) for pid in pids.values())
        assert set(ports.values()) <= _listening_ports(set())
        # Nothing a service writes lands in the checkout: it all stays under the stack's state.
        assert (state / "run" / "anomaly").is_dir() and (state / "run" / "budget").is_dir()

        status, body = _call_gateway(ports["AGENTWATCH_PORT"], "tok-smoke")
        assert status == 503 and body["error"]["code"] == "provider_not_configured", body
        status, body = _call_gateway(ports["AGENTWATCH_PORT"], "not-a-token")
        assert status == 401 and body["error"]["code"] == "invalid_api_key", body

        again = subprocess.run([*make, "up"], env=env, capture_output=True, text=True, timeout=120, check=False)
        assert again.returncode == 0, again.stderr
        assert "already up" in again.stdout
        assert localstack.Stack(state).running() == pids
    finally:
        down = subprocess.run([*make, "down"], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert down.returncode == 0, down.stderr
    for name, pid in pids.items():
        assert not localstack.pid_alive(pid), f"{name} (pid {pid}) still alive after make down"
    left = _listening_ports(set()) & set(ports.values())
    assert not left, f"ports still listening after make down: {left}"


def test_port_taken_is_one_clear_line(tmp_root: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = _clean_env(AGENTWATCH_KAFKA_PORT=str(port), AGENTWATCH_KAFKA_CONTROLLER_PORT=str(localstack.free_port()))
        r = _localstack_up(tmp_root / "taken", env)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines == [
        f"error: port {port} on 127.0.0.1 is already taken; Kafka cannot listen there "
        "(stop what holds it, or choose another port)"
    ]
    assert "Traceback" not in r.stdout + r.stderr


def test_java_missing_is_one_clear_line(tmp_root: Path) -> None:
    bare = tmp_root / "bin-without-java"
    bare.mkdir(exist_ok=True)
    env = _clean_env(PATH=str(bare), AGENTWATCH_KAFKA_PORT=str(localstack.free_port()))
    r = _localstack_up(tmp_root / "nojava", env)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "error: Java not found on PATH: Kafka needs Java 17 (apt-get install openjdk-17-jre-headless)"
    ]


def test_failed_download_is_one_clear_line(tmp_root: Path) -> None:
    if shutil.which("mvn") is None:
        pytest.skip("no Maven on this machine")
    settings = tmp_root / "unreachable-mirror.xml"
    settings.write_text(
        "<settings><mirrors><mirror><id>down</id><mirrorOf>*</mirrorOf>"
        "<url>http://127.0.0.1:9/maven2</url></mirror></mirrors></settings>"
    )
    libs = tmp_root / "kafka-libs-fail"
    r = subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(ROOT),
            "kafka-jars",
            f"KAFKA_LIBS={libs}",
            f"MVN_FLAGS=-s {settings} -Dmaven.repo.local={tmp_root / 'empty-m2'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: downloading the Kafka jars failed")
    assert "Traceback" not in r.stderr


def _compose_command() -> list[str] | None:
    """`docker compose` (v2 plugin) when present, else Debian's `docker-compose` (v1)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_file_is_valid() -> None:
    cmd = _compose_command()
    if cmd is None:
        pytest.skip("no docker compose client on this machine")
    r = subprocess.run(
        [*cmd, "-f", str(ROOT / "docker/compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
