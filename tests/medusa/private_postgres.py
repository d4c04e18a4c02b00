"""A PostgreSQL cluster of a test's own, for what must never happen to the shared test server:
cluster-wide settings (``max_slot_wal_keep_size``), restarts, WAL thrown away.

``private_postgres(**settings)`` runs ``initdb`` in a temporary folder (as the ``postgres``
system user when the tests run as root: initdb refuses root), starts the server on a free
port of 127.0.0.1 with ``wal_level = logical`` and the settings given, and stops it and
removes the folder afterwards. Trust authentication, superuser ``postgres``, database
``postgres``. The PostgreSQL binaries are the first of /usr/lib/postgresql/*/bin (or
``$GROUPWIRE_TEST_PG_BIN``); a missing one fails the test, it never skips.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


def pg_bin() -> Path:
    configured = os.environ.get("GROUPWIRE_TEST_PG_BIN")
    candidates = (
        [Path(configured)]
        if configured
        else sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    )
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    pytest.fail("no PostgreSQL binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PrivateCluster:
    bin: Path
    data: Path
    port: int
    run_as: list[str]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        log = self.data.parent / "server.log"
        command = [*self.run_as, str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(log)]
        done = subprocess.run([*command, "-w", "-t", "60", *args], capture_output=True)
        if done.returncode != 0:
            text = log.read_text() if log.exists() else ""
            raise AssertionError(f"pg_ctl {' '.join(args)} failed: {done.stderr!r}\n{text[-3000:]}")

    def restart(self) -> None:
        """A fast restart (``pg_ctl restart -m fast``): every connection is cut."""
        self.pg_ctl("restart", "-m", "fast")


@contextmanager
def private_postgres(
    wal_segsize_mb: int | None = None, **settings: str
) -> Iterator[PrivateCluster]:
    """``settings`` go into postgresql.auto.conf as written (quote strings: ``"'2MB'"``);
    ``wal_segsize_mb``: initdb's ``--wal-segsize`` (1 makes WAL thrown away quickly)."""
    binaries = pg_bin()
    root = Path(tempfile.mkdtemp(prefix="groupwire-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    try:
        done = subprocess.run(
            [
                *run_as,
                str(binaries / "initdb"),
                *("-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"),
                *("-E", "UTF8", "--locale=C"),
                *([f"--wal-segsize={wal_segsize_mb}"] if wal_segsize_mb else []),
            ],
            capture_output=True,
        )
        if done.returncode != 0:
            pytest.fail(f"initdb failed: {done.stderr.decode(errors='replace')}")
        cluster = PrivateCluster(binaries, data, free_port(), run_as)
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(cluster.port),
            "unix_socket_directories": f"'{root}'",
            "wal_level": "logical",
            "max_wal_senders": "5",
            "max_replication_slots": "5",
            "fsync": "off",
            "shared_buffers": "16MB",
            **settings,
        }
        with (data / "postgresql.auto.conf").open("a") as file:
            file.writelines(f"{name} = {value}\n" for name, value in conf.items())
        cluster.pg_ctl("start")
        try:
            yield cluster
        finally:
            cluster.pg_ctl("stop", "-m", "immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)
