"""Fixtures shared by several test folders beyond the real components in conftest."""

from __future__ import annotations

import json as _json
from collections.abc import Callable as _Callable
from collections.abc import Iterator as _Iterator
from pathlib import Path as _Path

import pytest as _pytest

from tests.e2e import procs as _procs

# --------------------------------------------------------------------------- gateway

GATEWAY_TOKENS = {"tok-alpha": "alpha", "tok-beta": "beta"}
OPENAI_KEY = "sk-fake-provider-openai-key"
ANTHROPIC_KEY = "sk-ant-fake-provider-key"


@_pytest.fixture(scope="session")
def fake_upstream_proc(tmp_root: _Path) -> _Iterator[_procs.ServiceProcess]:
    """The fake OpenAI/Anthropic upstream as its own process (shared; clear its records per test)."""
    proc = _procs.fake_upstream(_procs.free_port(), tmp_root / "logs").start()
    try:
        yield proc
    finally:
        proc.stop()


GatewayFactory = _Callable[..., _procs.ServiceProcess]


@_pytest.fixture
def gateway_factory(
    tmp_root: _Path, kafka_bootstrap: str, topic_prefix: str, fake_upstream_proc: _procs.ServiceProcess
) -> _Iterator[GatewayFactory]:
    """Starts gateway processes wired to the fake upstream and the test's topic prefix;
    keyword arguments override environment variables. Stops them all afterwards."""
    started: list[_procs.ServiceProcess] = []

    def start(port: int | None = None, **env: str) -> _procs.ServiceProcess:
        port = port or _procs.free_port()
        base = {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "AGENTWATCH_TOPIC_PREFIX": topic_prefix,
            "AGENTWATCH_TOPIC_PARTITIONS": "3",
            "OPENAI_API_KEY": OPENAI_KEY,
            "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
            "TENANT_TOKEN_MAP": _json.dumps(GATEWAY_TOKENS),
            "AGENTWATCH_OPENAI_BASE_URL": f"{fake_upstream_proc.url}/v1",
            "AGENTWATCH_ANTHROPIC_BASE_URL": f"{fake_upstream_proc.url}/v1",
            "AGENTWATCH_SPOOL_DIR": str(tmp_root / f"spool-{port}"),
        }
        proc = _procs.gateway(port, tmp_root / "logs", {**base, **env}).start()
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for p in started:
            p.stop()


from tests.budget_support import budget_workers  # noqa: E402, F401
