"""Fixtures of the scale-out tests: a PostgreSQL schema, a Redis key prefix, processes.

These tests need the real servers (PostgreSQL at 127.0.0.1:5432, Redis at 127.0.0.1:6379)
and FAIL when either is unreachable.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from groupwire import Groupwire

REDIS_URL = os.environ.get("GROUPWIRE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh PostgreSQL schema (the bus is a multi-process setup: PostgreSQL only)."""
    schemas = request.getfixturevalue("postgres_schemas")
    with schemas.fresh() as url:
        yield url


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis is required by these tests and unreachable at {REDIS_URL}: {error}")
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    value = f"gw:test:{uuid.uuid4().hex[:10]}:"
    yield value
    delete_keys(redis_client, value)


def delete_keys(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def open_gw(pg_url: str, prefix: str) -> Iterator[Callable[..., Groupwire]]:
    """Opens Groupwire instances on this test's database and bus; closes them afterwards."""
    opened: list[Groupwire] = []

    def open_one(**overrides: Any) -> Groupwire:
        options: dict[str, Any] = {
            "load_entry_points": False,
            "bus_url": REDIS_URL,
            "bus_prefix": prefix,
            "delivery_retry_base": 0.01,
            "delivery_retry_max": 0.05,
            "relay_poll_interval": 0.05,
            "bus_lease_seconds": 1.0,
            "bus_claim_idle_seconds": 0.5,
        }
        options.update(overrides)
        plugins = options.pop("plugins", [])
        url = options.pop("database_url", pg_url)
        gw = Groupwire.open(url, plugins=plugins, **options)
        opened.append(gw)
        return gw

    yield open_one
    for gw in reversed(opened):
        gw.close()


def wait_until(condition: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s: {message}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(**values: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.update(values)
    return env


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = open(log, "ab")  # noqa: SIM115  (the child owns it)
    return subprocess.Popen(
        [sys.executable, *args], env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT
    )


class RedisServer:
    """A redis-server of the test's own (no persistence), to restart at will."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:  # fail loudly: a data-loss test must not pass unseen in CI
            pytest.fail("redis-server is required by these tests and is not on PATH")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=1)
        wait_until(lambda: _pings(client), 10, "the test's redis-server answers PING")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def shutdown_nosave(self) -> None:
        """``SHUTDOWN NOSAVE``: the server exits and forgets every key."""
        assert self.process is not None
        client = redis.Redis(port=self.port, socket_timeout=5)
        with contextlib.suppress(redis.ConnectionError):  # it closes the connection as it exits
            client.shutdown(nosave=True)
        self.process.wait(10)
        self.process = None


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
