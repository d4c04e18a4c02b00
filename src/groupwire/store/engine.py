"""Engines for the two supported backends: an embedded SQLite file (WAL) and PostgreSQL.

SQLite write transactions start with ``BEGIN IMMEDIATE`` so that two writers queue on the
database lock instead of failing half-way with "database is locked"; reads use a plain
deferred ``BEGIN`` and, thanks to WAL, never wait for a writer.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import StaticPool

WRITE = "groupwire_write"
NOWAIT = "groupwire_nowait"
"""Execution option for a write transaction that must not queue for SQLite's write lock: its
``BEGIN IMMEDIATE`` fails at once (see :func:`is_locked`) when another writer holds the lock.
PostgreSQL ignores it."""
BUSY_TIMEOUT_MS = 30000


def is_locked(error: BaseException) -> bool:
    """Whether ``error`` is SQLite refusing a write because another writer holds the lock."""
    original = getattr(error, "orig", error)
    return isinstance(original, sqlite3.OperationalError) and "locked" in str(original)


def normalise_url(url: str) -> str:
    """Accept the URLs people write (``postgres://``, ``postgresql://``) and pick our driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_store_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, in_memory=parsed.database in (None, "", ":memory:"), **kwargs)
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _sqlite_engine(url: str, *, in_memory: bool, **kwargs: Any) -> Engine:
    connect_args = {"check_same_thread": False, "timeout": 30}
    if in_memory:
        kwargs.setdefault("poolclass", StaticPool)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB: bulk changes touch many pages
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if not options.get(WRITE, False):
            conn.exec_driver_sql("BEGIN")
        elif not options.get(NOWAIT, False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("PRAGMA busy_timeout=0")
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            finally:
                conn.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    return engine
