"""The local stack without a Docker engine: a real KRaft Kafka broker, a throw-away
PostgreSQL cluster, and the AgentWatch services, each a process with a PID file.

Used by ``make up`` / ``make down`` (``python docker/localstack.py up|down|status``) and by
the test harness (``tests/conftest.py``), so both start the components the same way.
Every failure the user can fix (port taken, Java missing, jars not downloaded) is a
``StackError`` with one line naming the cause.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
KAFKA_LIBS = Path(os.environ.get("AGENTWATCH_KAFKA_LIBS") or CACHE / "kafka-libs")
PG_BIN_CANDIDATES = (Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin"))
DEFAULT_STATE = CACHE / "stack"


class StackError(RuntimeError):
    """A failure the user can act on; its message is the one line we print."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_free(port: int, what: str) -> None:
    if not port_is_free(port):
        raise StackError(
            f"port {port} on 127.0.0.1 is already taken; {what} cannot listen there "
            f"(stop what holds it, or choose another port)"
        )


def wait_for_port(port: int, timeout: float, what: str, pid: int | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None and not pid_alive(pid):
            tail = _tail(log) if log else ""
            raise StackError(f"{what} exited during start-up{': ' + tail if tail else ''}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise StackError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s (log: {log})")


def _tail(log: Path | None, lines: int = 3) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").strip().splitlines()
    return " | ".join(line.strip() for line in text[-lines:])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours is not alive for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(pid: int, timeout: float = 20.0) -> None:
    """Stop one process we started: SIGTERM, then SIGKILL after ``timeout``."""
    if not pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # Reap it if it is our child, so it does not linger as a zombie.
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


# --------------------------------------------------------------------------- Kafka


@dataclass
class Kafka:
    state_dir: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "768m"
    pid: int | None = None

    def __post_init__(self) -> None:
        self.state_dir = self.state_dir.resolve()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.state_dir / "kafka.log"

    def _config(self) -> Path:
        data = self.state_dir / "data"
        cfg = self.state_dir / "server.properties"
        cfg.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={data}",
                    "num.partitions=12",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=12",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=true",
                    "log.retention.hours=168",
                    "log.segment.bytes=67108864",
                    "",
                ]
            )
        )
        return cfg

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise StackError("Java not found on PATH: Kafka needs Java 17 (apt-get install openjdk-17-jre-headless)")
        return java

    def _classpath(self) -> str:
        if not KAFKA_LIBS.is_dir() or not any(KAFKA_LIBS.glob("kafka_2.13-*.jar")):
            raise StackError(f"Kafka jars missing in {KAFKA_LIBS}: run `make deps` (Maven resolves them)")
        return f"{KAFKA_LIBS}/*"

    def start(self, timeout: float = 90.0) -> None:
        java, cp = self._java(), self._classpath()
        require_free(self.port, "Kafka")
        require_free(self.controller_port, "the Kafka controller")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cfg = self._config()
        log4j = self.state_dir / "log4j2.properties"
        log4j.write_text(
            "status=error\nrootLogger.level=WARN\nrootLogger.appenderRef.stdout.ref=STDOUT\n"
            "appender.stdout.type=Console\nappender.stdout.name=STDOUT\n"
            "appender.stdout.layout.type=PatternLayout\nappender.stdout.layout.pattern=[%d] %p %m (%c)%n\n"
            "logger.kafka.name=kafka.server.KafkaRaftServer\nlogger.kafka.level=INFO\n"
        )
        jvm = [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            cp,
        ]
        if not (self.state_dir / "data" / "meta.properties").exists():
            cluster_id = _kafka_cluster_id()
            fmt = subprocess.run(
                [
                    *jvm,
                    "kafka.tools.StorageTool",
                    "format",
                    f"--cluster-id={cluster_id}",
                    "-c",
                    str(cfg),
                    "--ignore-formatted",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if fmt.returncode != 0:
                raise StackError(f"formatting Kafka storage failed: {(fmt.stderr or fmt.stdout).strip()[-300:]}")
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                [*jvm, "kafka.Kafka", str(cfg)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid = proc.pid
        wait_for_port(self.port, timeout, "Kafka", pid=proc.pid, log=self.log)

    def stop(self) -> None:
        if self.pid is not None:
            stop_pid(self.pid, timeout=30.0)
            self.pid = None


def _kafka_cluster_id() -> str:
    # Kafka wants a base64url-encoded 16-byte UUID without padding.
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


# ----------------------------------------------------------------------- PostgreSQL


def pg_bin() -> Path:
    for cand in PG_BIN_CANDIDATES:
        if (cand / "initdb").exists():
            return cand
    raise StackError("PostgreSQL server binaries not found: run `make deps` (apt-get install postgresql-15)")


@dataclass
class Postgres:
    state_dir: Path
    port: int = 5432
    database: str = "agentwatch"
    pid: int | None = None
    _as_postgres: bool = field(default_factory=lambda: os.geteuid() == 0)

    def __post_init__(self) -> None:
        # PostgreSQL runs from its own working directory: every path it gets must be absolute.
        self.state_dir = self.state_dir.resolve()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def data(self) -> Path:
        return self.state_dir / "data"

    @property
    def log(self) -> Path:
        return self.state_dir / "postgres.log"

    def _run(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        cmd = ["runuser", "-u", "postgres", "--", *args] if self._as_postgres else list(args)
        return subprocess.run(cmd, capture_output=True, text=True, check=False)

    def start(self, timeout: float = 60.0) -> None:
        binp = pg_bin()
        require_free(self.port, "PostgreSQL")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.state_dir, pw.pw_uid, pw.pw_gid)
        if not (self.data / "PG_VERSION").exists():
            r = self._run(
                [str(binp / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]
            )
            if r.returncode != 0:
                raise StackError(f"initdb failed: {(r.stderr or r.stdout).strip()[-300:]}")
        opts = (
            f"-p {self.port} -k {self.state_dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
            f"-c shared_buffers=256MB"
        )
        r = self._run(
            [
                str(binp / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                opts,
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ]
        )
        if r.returncode != 0:
            raise StackError(f"PostgreSQL did not start: {_tail(self.log) or r.stderr.strip()}")
        self.pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        r = self._run(
            [
                str(binp / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'",
            ]
        )
        if r.stdout.strip() != "1":
            r = self._run(
                [str(binp / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", self.database]
            )
            if r.returncode != 0:
                raise StackError(f"createdb failed: {r.stderr.strip()}")

    def stop(self) -> None:
        if self.pid is None:
            return
        binp = pg_bin()
        self._run([str(binp / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
        stop_pid(self.pid)
        self.pid = None


# ----------------------------------------------------------------- services and up/down


@dataclass(frozen=True)
class Service:
    name: str
    args: tuple[str, ...]
    port_env: str | None = None
    default_port: int | None = None


# The AgentWatch services `make up` starts, in order; each is `agentwatch <args>`.
SERVICES: tuple[Service, ...] = (
    Service("gateway", ("gateway",), port_env="AGENTWATCH_PORT", default_port=8080),
    Service("anomaly", ("anomaly",), "AGENTWATCH_ANOMALY_WEB_PORT", 6067),
    Service("notifier", ("notifier",)),
    Service("budget", ("budget",), port_env="AGENTWATCH_BUDGET_WEB_PORT", default_port=6066),
    Service("sink", ("sink",), port_env="AGENTWATCH_SINK_PORT", default_port=8090),
    Service("risk-scan", ("risk-scan",)),
)


def _venv_bin(name: str) -> str:
    cand = ROOT / ".venv" / "bin" / name
    return str(cand) if cand.exists() else name


@dataclass
class Stack:
    state: Path = DEFAULT_STATE

    @property
    def pid_dir(self) -> Path:
        return self.state / "pids"

    @property
    def env_file(self) -> Path:
        return self.state / "stack.env.json"

    def _pidfile(self, name: str) -> Path:
        return self.pid_dir / f"{name}.pid"

    def running(self) -> dict[str, int]:
        out: dict[str, int] = {}
        if self.pid_dir.is_dir():
            for f in sorted(self.pid_dir.glob("*.pid")):
                try:
                    pid = int(f.read_text().strip())
                except ValueError:
                    continue
                if pid_alive(pid):
                    out[f.stem] = pid
        return out

    def _record(self, name: str, pid: int) -> None:
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self._pidfile(name).write_text(f"{pid}\n")

    def up(self, environ: Mapping[str, str]) -> dict[str, str]:
        running = self.running()
        if running and self.env_file.exists():
            endpoints: dict[str, str] = json.loads(self.env_file.read_text())
            print(f"already up ({', '.join(running)}); `make down` stops it")
            return endpoints
        self.state.mkdir(parents=True, exist_ok=True)
        endpoints = {}
        started: list[str] = []
        try:
            if environ.get("KAFKA_BOOTSTRAP_SERVERS"):
                endpoints["KAFKA_BOOTSTRAP_SERVERS"] = environ["KAFKA_BOOTSTRAP_SERVERS"]
            else:
                kafka = Kafka(
                    self.state / "kafka",
                    port=int(environ.get("AGENTWATCH_KAFKA_PORT", "9092")),
                    controller_port=int(environ.get("AGENTWATCH_KAFKA_CONTROLLER_PORT", "9093")),
                )
                kafka.start()
                assert kafka.pid is not None
                self._record("kafka", kafka.pid)
                started.append("kafka")
                endpoints["KAFKA_BOOTSTRAP_SERVERS"] = kafka.bootstrap
            if environ.get("DATABASE_URL"):
                endpoints["DATABASE_URL"] = environ["DATABASE_URL"]
            else:
                pg = Postgres(self.state / "postgres", port=int(environ.get("AGENTWATCH_PG_PORT", "5432")))
                pg.start()
                assert pg.pid is not None
                self._record("postgres", pg.pid)
                started.append("postgres")
                endpoints["DATABASE_URL"] = pg.url
            endpoints["CLICKHOUSE_URL"] = environ.get("CLICKHOUSE_URL") or f"chdb://{self.state / 'clickhouse'}"
            self.env_file.write_text(json.dumps(endpoints, indent=2))
            env = {**environ, **endpoints}
            for svc in SERVICES:
                self._start_service(svc, env)
                started.append(svc.name)
        except BaseException:
            self.down(quiet=True)
            raise
        return endpoints

    def _start_service(self, svc: Service, env: dict[str, str]) -> None:
        port = None
        if svc.port_env:
            port = int(env.get(svc.port_env) or svc.default_port or 0)
            require_free(port, f"the {svc.name} service")
        logs = self.state / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"{svc.name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [_venv_bin("agentwatch"), *svc.args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._record(svc.name, proc.pid)
        if port:
            wait_for_port(port, 60.0, f"the {svc.name} service", pid=proc.pid, log=log)

    def down(self, quiet: bool = False) -> list[str]:
        stopped: list[str] = []
        if not self.pid_dir.is_dir():
            return stopped
        # Services first (reverse start order), then the stores they use.
        order = [s.name for s in reversed(SERVICES)] + ["postgres", "kafka"]
        files = {f.stem: f for f in self.pid_dir.glob("*.pid")}
        for name in order + sorted(set(files) - set(order)):
            f = files.get(name)
            if f is None:
                continue
            try:
                pid = int(f.read_text().strip())
            except ValueError:
                pid = 0
            if pid and pid_alive(pid):
                if name == "postgres":
                    Postgres(self.state / "postgres", pid=pid).stop()
                else:
                    stop_pid(pid, timeout=30.0)
                stopped.append(name)
            f.unlink(missing_ok=True)
        self.env_file.unlink(missing_ok=True)
        if not quiet:
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return stopped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localstack", description=__doc__)
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE)
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    stack = Stack(args.state.resolve())
    try:
        if args.command == "up":
            endpoints = stack.up(os.environ)
            port = os.environ.get("AGENTWATCH_PORT", "8080")
            print("AgentWatch local stack is up:")
            for k, v in endpoints.items():
                print(f"  {k}={v}")
            if any(s.name == "gateway" for s in SERVICES):
                print(f"  gateway: http://127.0.0.1:{port}")
            print(f"  logs: {stack.state}/logs   stop: make down")
        elif args.command == "down":
            stack.down()
        else:
            running = stack.running()
            print(json.dumps(running) if running else "not running")
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
