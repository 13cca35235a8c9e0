"""Session-scoped real components for the whole suite.

Kafka and PostgreSQL are real servers: reused when ``KAFKA_BOOTSTRAP_SERVERS`` /
``DATABASE_URL`` are set (or ``make up`` is running), otherwise started once per test
session by the same code ``make up`` uses. ClickHouse is the embedded chdb engine, one path
per process (chdb allows no more), one database per test. Tests isolate themselves with
unique topic prefixes and database names instead of restarting anything.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docker"))

import localstack  # noqa: E402

pytest_plugins = ["tests.fixtures"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for kind in ("unit", "integration", "e2e"):
            if kind in parts:
                item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    """A temp dir the postgres user can traverse (PostgreSQL runs as postgres under root)."""
    d = Path(tempfile.mkdtemp(prefix="agentwatch-tests-"))
    d.chmod(0o755)
    yield d


def _running_stack() -> dict[str, str]:
    stack = localstack.Stack()
    if stack.env_file.exists() and stack.running():
        data: dict[str, str] = json.loads(stack.env_file.read_text())
        return data
    return {}


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_root: Path) -> Iterator[str]:
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or _running_stack().get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    kafka = localstack.Kafka(tmp_root / "kafka", port=localstack.free_port(), controller_port=localstack.free_port())
    kafka.start()
    try:
        yield kafka.bootstrap
    finally:
        kafka.stop()


@pytest.fixture(scope="session")
def postgres_url(tmp_root: Path) -> Iterator[str]:
    existing = os.environ.get("DATABASE_URL") or _running_stack().get("DATABASE_URL")
    if existing:
        yield existing
        return
    pg = localstack.Postgres(tmp_root / "postgres", port=localstack.free_port())
    pg.start()
    try:
        yield pg.url
    finally:
        pg.stop()


@pytest.fixture
def own_postgres(tmp_root: Path) -> Iterator[localstack.Postgres]:
    """A PostgreSQL server of this test's own, for tests that stop and restart it."""
    pg = localstack.Postgres(tmp_root / f"pg-{uuid.uuid4().hex[:8]}", port=localstack.free_port())
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture
def own_kafka(tmp_root: Path) -> Iterator[localstack.Kafka]:
    """A Kafka broker of this test's own, for tests that take the broker down."""
    kafka = localstack.Kafka(
        tmp_root / f"kafka-{uuid.uuid4().hex[:8]}", port=localstack.free_port(), controller_port=localstack.free_port()
    )
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture(scope="session")
def clickhouse_url(tmp_root: Path) -> str:
    """The embedded engine's DSN for this test process; an HTTP server when CLICKHOUSE_URL says so."""
    return os.environ.get("CLICKHOUSE_URL") or f"chdb://{tmp_root / 'chdb'}"


@pytest.fixture
def unique() -> str:
    """A short unique name part for topics, tables, databases and tenants."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def topic_prefix(unique: str) -> str:
    return f"{unique}."


@pytest.fixture
async def pg_database(postgres_url: str, unique: str) -> AsyncIterator[str]:
    """A fresh database on the shared server; dropped afterwards."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{unique}"')
    base, _, _ = postgres_url.rpartition("/")
    try:
        yield f"{base}/{unique}"
    finally:
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{unique}" WITH (FORCE)')
