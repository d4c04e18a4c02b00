"""A real Medusa 2.21.2 server for Groupwire's Medusa tests and benchmarks (no mock of Medusa).

``running_medusa(workdir)`` brings one up and tears it down:

1. installs the npm project in ``tests/medusa/project`` once into a cache folder keyed by the
   hash of its ``package.json`` and ``package-lock.json`` (``npm ci``, about 700 MB;
   ``$GROUPWIRE_MEDUSA_CACHE``, default ``~/.cache/groupwire``), under a file lock so that
   concurrent runs install it once;
2. copies the project's own files (config, ``src/``) into ``workdir`` with ``node_modules``
   linked to the cache, so that each run is isolated from the others and writes nothing into
   the repository;
3. starts a redis-server of its own on a free port (Medusa's BullMQ queue keys,
   ``RedisEventBusService:events-queue:*``, never meet another Redis user's) and creates a
   PostgreSQL database of its own (``medusa_<random>``) on the test server
   (``GROUPWIRE_TEST_POSTGRES_URL``, default 127.0.0.1:5432);
4. runs ``medusa db:migrate`` and ``medusa user``, starts ``medusa start`` on a free port in a
   process group of its own, waits for ``/health``, signs in and creates a secret API key;
5. at the end stops Medusa's process group and Redis, and drops the database.

Whatever is missing (node, npm, redis-server, PostgreSQL) raises :class:`MedusaHarnessError`;
the pytest fixture turns it into a failure, never a skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

PROJECT = Path(__file__).resolve().parent / "project"
PROJECT_FILES = ("package.json", "package-lock.json", "tsconfig.json", "medusa-config.ts", "src")
POSTGRES_URL = os.environ.get(
    "GROUPWIRE_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test"
)
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "secret"
QUEUE_NAME = "events-queue"
QUEUE_PREFIX = "RedisEventBusService"
MINIMUM_NODE = ((20, 19), (22, 12))  # Medusa 2.21.2's engines: ^20.19.0 || >=22.12.0

Event = dict[str, Any]


class MedusaHarnessError(RuntimeError):
    """Medusa could not be installed, started or reached; the message says what is missing."""


@dataclass
class MedusaServer:
    """A running Medusa: where it is, how to authenticate, and what its subscriber recorded."""

    base_url: str
    api_key: str
    """Secret API key: Basic auth with it as user name and an empty password."""
    jwt: str
    database_url: str
    """``postgres://`` URL of Medusa's own database (as Medusa is configured with it)."""
    redis_url: str
    """The private Redis of Medusa's event bus (queue ``events-queue``, prefix below)."""
    events_path: Path
    """JSON lines ``{name, data, metadata}`` appended by ``src/subscribers/record.ts``."""
    log_path: Path
    queue_name: str = QUEUE_NAME
    queue_prefix: str = QUEUE_PREFIX
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent in each step: install, migrate, user, start, total; after the run also
    stop_medusa, drop_database, stop_redis."""
    process: MedusaProcess | None = None
    redis: RedisProcess | None = None
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.base_url, auth=(self.api_key, ""), timeout=60)

    def recorded(self) -> list[Event]:
        """Every event the recording subscriber has written so far, oldest first."""
        try:
            text = self.events_path.read_text()
        except FileNotFoundError:
            return []
        # A line is complete once its newline is written; a partial last line is skipped.
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

    def wait_for_recorded(
        self, predicate: Callable[[Event], bool], timeout: float = 30.0
    ) -> list[Event]:
        """The recorded events matching ``predicate``, as soon as there is at least one.

        Raises AssertionError (with everything recorded) when none arrives in ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            matching = [event for event in self.recorded() if predicate(event)]
            if matching:
                return matching
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no matching event recorded in {timeout} s; recorded: {self.recorded()}"
                )
            time.sleep(0.05)

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """Medusa's process stopped (its BullMQ worker consumes nothing) and started again
        on leaving, on the same port and database, with the same key."""
        assert self.process is not None
        self.process.stop()
        try:
            yield
        finally:
            self.process.start()

    def lose_redis_data(self) -> None:
        """What a Redis without persistence does on a restart: ``SHUTDOWN NOSAVE``, and
        started again empty on the same port."""
        assert self.redis is not None
        self.redis.restart_empty()

    def close(self) -> None:
        self.client.close()


@contextlib.contextmanager
def running_medusa(workdir: Path) -> Iterator[MedusaServer]:
    """A migrated Medusa with an admin user and a secret key, stopped and dropped afterwards.

    ``workdir`` (an empty or new folder) receives the per-run project copy, the log
    (``medusa.log``) and the recorded events (``events.jsonl``).
    """
    timings: dict[str, float] = {}
    check_tools()
    started = time.monotonic()
    node_modules = installed_node_modules()
    timings["install"] = time.monotonic() - started
    project = prepare_project(workdir, node_modules)
    log_path = workdir / "medusa.log"
    events_path = workdir / "events.jsonl"
    with (
        private_redis(workdir, timings) as redis,
        fresh_database(timings) as database_url,
        log_path.open("ab") as log,
    ):
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis.url,
            "PORT": str(port),
            "MEDUSA_DISABLE_TELEMETRY": "true",
            "MEDUSA_RECORDED_EVENTS": str(events_path),
            "JWT_SECRET": secrets.token_hex(16),
            "COOKIE_SECRET": secrets.token_hex(16),
        }
        medusa = str(project / "node_modules" / ".bin" / "medusa")
        step = time.monotonic()
        run_step([medusa, "db:migrate"], project, env, log, log_path, timeout=600)
        timings["migrate"] = time.monotonic() - step
        step = time.monotonic()
        run_step(
            [medusa, "user", "-e", ADMIN_EMAIL, "-p", ADMIN_PASSWORD],
            project,
            env,
            log,
            log_path,
            timeout=300,
        )
        timings["user"] = time.monotonic() - step
        step = time.monotonic()
        base_url = f"http://127.0.0.1:{port}"
        process = MedusaProcess([medusa, "start"], project, env, log, log_path, base_url)
        try:
            process.start()
            timings["start"] = time.monotonic() - step
            jwt, api_key = sign_in(base_url)
            timings["total"] = time.monotonic() - started
            server = MedusaServer(
                base_url=base_url,
                api_key=api_key,
                jwt=jwt,
                database_url=database_url,
                redis_url=redis.url,
                events_path=events_path,
                log_path=log_path,
                timings=timings,
                process=process,
                redis=redis,
            )
            try:
                yield server
            finally:
                server.close()
        finally:
            step = time.monotonic()
            process.stop()
            timings["stop_medusa"] = time.monotonic() - step


@dataclass
class MedusaProcess:
    """``medusa start`` in a process group of its own, which can be stopped and started again."""

    command: list[str]
    cwd: Path
    env: dict[str, str]
    log: Any
    log_path: Path
    base_url: str
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.write(b"\n$ medusa start\n")
        self.log.flush()
        self.process = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
        )
        wait_until_healthy(self.base_url, self.process, self.log_path, timeout=300)

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)
            self.process = None


def check_tools() -> None:
    """Fail loudly, with what is missing, before doing anything."""
    missing = [tool for tool in ("node", "npm", "redis-server") if shutil.which(tool) is None]
    if missing:
        raise MedusaHarnessError(
            f"the Medusa tests need {', '.join(missing)} on PATH "
            "(Node.js 20.19+ with npm, and Redis's redis-server)"
        )
    version = subprocess.run(
        ["node", "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    major, minor = (int(part) for part in version.lstrip("v").split(".")[:2])
    if not ((major == 20 and minor >= 19) or (major == 22 and minor >= 12) or major > 22):
        raise MedusaHarnessError(f"Medusa 2.21.2 needs Node.js ^20.19 or >=22.12, found {version}")


def cache_root() -> Path:
    configured = os.environ.get("GROUPWIRE_MEDUSA_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "groupwire"


def lock_hash(project: Path = PROJECT) -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((project / name).read_bytes())
    return digest.hexdigest()[:16]


def installed_node_modules(project: Path = PROJECT, name: str = "medusa") -> Path:
    """The cached ``node_modules`` for a locked npm project, installed on first use.

    The cache folder is ``<cache root>/<name>-<hash of package.json and its lock>``, so a
    changed lock installs anew and the Medusa project and other npm projects of the tests
    (``tests/sdk/project``) never share one. ``npm ci --ignore-scripts``: none of the
    packages' install scripts is needed to run Medusa (the native ones ship prebuilt
    binaries), and npm 11 no longer runs them unasked.
    """
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{name}-{lock_hash(project)}"
    done = target / ".installed"
    with (root / f"{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent run waits for this install
        if done.exists():
            return target / "node_modules"
        shutil.rmtree(target, ignore_errors=True)  # what a broken install left
        target.mkdir()
        for file in ("package.json", "package-lock.json"):
            shutil.copy2(project / file, target / file)
        log_path = target / "npm-ci.log"
        with log_path.open("wb") as log:
            try:
                subprocess.run(
                    ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                    cwd=target,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    check=True,
                    timeout=1200,
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
                raise MedusaHarnessError(
                    f"npm ci of {project} failed ({error}); {log_path}:\n" + tail(log_path, 30)
                ) from error
        done.touch()
        return target / "node_modules"


def prepare_project(workdir: Path, node_modules: Path) -> Path:
    """A copy of the project's files in ``workdir/project``, sharing the cached node_modules."""
    project = workdir / "project"
    project.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(source, project / name)
        else:
            shutil.copy2(source, project / name)
    (project / "node_modules").symlink_to(node_modules, target_is_directory=True)
    return project


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RedisProcess:
    """A redis-server of this run only (no persistence), on a free port."""

    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *("redis-server", "--bind", "127.0.0.1", "--port", str(self.port)),
                    *("--save", "", "--appendonly", "no"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline, address = time.monotonic() + 30, ("127.0.0.1", self.port)
        while True:
            with contextlib.suppress(OSError), socket.create_connection(address, 1):
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise MedusaHarnessError(f"redis-server did not start:\n{tail(self.log_path, 20)}")
            time.sleep(0.05)

    def restart_empty(self) -> None:
        """``SHUTDOWN NOSAVE`` (every key is gone with the process), then a new start."""
        assert self.process is not None
        with socket.create_connection(("127.0.0.1", self.port), 5) as connection:
            connection.sendall(b"SHUTDOWN NOSAVE\r\n")
            with contextlib.suppress(OSError):
                connection.recv(100)  # the server closes the connection as it exits
        self.process.wait(timeout=30)
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)
            self.process = None


@contextlib.contextmanager
def private_redis(workdir: Path, timings: dict[str, float]) -> Iterator[RedisProcess]:
    """A redis-server of this run only (no persistence), on a free port."""
    redis = RedisProcess(free_port(), workdir / "redis.log")
    try:
        redis.start()
        yield redis
    finally:
        step = time.monotonic()
        redis.stop()
        timings["stop_redis"] = time.monotonic() - step


@contextlib.contextmanager
def fresh_database(timings: dict[str, float]) -> Iterator[str]:
    """A new database ``medusa_<random>`` on the test server, dropped afterwards."""
    url = make_url(POSTGRES_URL)
    host, port = url.host or "127.0.0.1", url.port or 5432
    conninfo = make_conninfo(
        host=host,
        port=port,
        user=url.username,
        password=url.password,
        dbname=url.database or "postgres",
        connect_timeout=10,
    )
    try:
        admin = psycopg.connect(conninfo, autocommit=True)
    except psycopg.Error as error:
        raise MedusaHarnessError(
            f"the Medusa tests need PostgreSQL at {url.render_as_string()}: {error}"
        ) from error
    name = f"medusa_{secrets.token_hex(6)}"
    with admin:
        row = admin.execute("select current_user").fetchone()
        user = url.username or (row[0] if row else "postgres")
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            password = f":{url.password}" if url.password else ""
            yield f"postgres://{user}{password}@{host}:{port}/{name}"
        finally:
            step = time.monotonic()
            drop_replication_slots(admin, name)
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            timings["drop_database"] = time.monotonic() - step


def drop_replication_slots(admin: psycopg.Connection[Any], database: str) -> None:
    """Drop the logical replication slots left on ``database`` (a capture test that failed
    half-way): PostgreSQL refuses to drop a database that has any, and each one holds WAL."""
    rows = admin.execute(
        "SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = %s", (database,)
    ).fetchall()
    for slot, pid in rows:
        if pid is not None:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with contextlib.suppress(psycopg.Error):
            admin.execute("SELECT pg_drop_replication_slot(%s)", (slot,))


def run_step(
    command: list[str],
    cwd: Path,
    env: dict[str, str],
    log: Any,
    log_path: Path,
    timeout: float,
) -> None:
    log.write(f"\n$ {' '.join(command[-3:])}\n".encode())
    log.flush()
    try:
        subprocess.run(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=timeout,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        raise MedusaHarnessError(f"{error}; {log_path}:\n{tail(log_path, 40)}") from error


def wait_until_healthy(
    base_url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise MedusaHarnessError(
                f"medusa start exited with {process.returncode}:\n{tail(log_path, 40)}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise MedusaHarnessError(
                f"Medusa was not healthy after {timeout} s:\n{tail(log_path, 40)}"
            )
        time.sleep(0.25)


def sign_in(base_url: str) -> tuple[str, str]:
    """The admin user's JWT and a new secret API key created with it."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        response = client.post(
            "/auth/user/emailpass", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        if response.status_code != 200:
            raise MedusaHarnessError(f"sign-in failed: {response.status_code} {response.text}")
        jwt = str(response.json()["token"])
        response = client.post(
            "/admin/api-keys",
            json={"title": "groupwire-tests", "type": "secret"},
            headers={"Authorization": f"Bearer {jwt}"},
        )
        if response.status_code != 200:
            raise MedusaHarnessError(
                f"creating the secret key failed: {response.status_code} {response.text}"
            )
        return jwt, str(response.json()["api_key"]["token"])


def stop_process_group(process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    """SIGTERM to the whole group, SIGKILL to what is left after ``grace`` seconds."""
    group = process.pid  # start_new_session: the group id is the leader's pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    deadline = time.monotonic() + grace
    while group_alive(group) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    process.wait(timeout=10)


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
