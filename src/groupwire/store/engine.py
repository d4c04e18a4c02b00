"""Engines for the two supported backends: an embedded SQLite file (WAL) and PostgreSQL.

SQLite write transactions start with ``BEGIN IMMEDIATE`` so that two writers queue on the
database lock instead of failing half-way with "database is locked"; reads use a plain
deferred ``BEGIN`` and, thanks to WAL, never wait for a writer.

PostgreSQL connections run in the driver's autocommit mode between the ``BEGIN`` this module
issues itself, as on SQLite: a transaction (every ``conn.begin()``, and the implicit one of a
plain ``engine.connect()``) starts with an explicit ``BEGIN``, while a connection opened by
:func:`reading` (option :data:`READ`) sends its statements alone, with no ``BEGIN`` and no
``ROLLBACK`` around them: two round trips less per read. Under PostgreSQL's default READ
COMMITTED every statement takes its own snapshot anyway, so a read sees the same rows either
way.

Lost PostgreSQL connections: the pool pings a connection before lending it only when it sat
unused for :data:`PING_AFTER_IDLE` seconds or more, and replaces a dead one; a connection in
constant use is not pinged before every request (a round trip each). One that died anyway
is found by its first statement and recognised by :func:`connection_lost`, and the pool then
replaces every connection older than the failure. A read then runs once more on a fresh
connection (:func:`read_retrying`); a write whose ``BEGIN`` fails that way has sent nothing
yet and is begun once more on a fresh connection (the unit of work does); a write that dies
later is never repeated here, the service layer reports it as
:class:`~groupwire.domain.errors.Unavailable` or
:class:`~groupwire.domain.errors.OutcomeUnknown`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast
from weakref import WeakKeyDictionary

import psycopg
from psycopg.types.json import set_json_loads
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, CursorResult, Dialect, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.sql.elements import ClauseElement

from groupwire.domain.errors import Unavailable

log = logging.getLogger("groupwire.store")

T = TypeVar("T")

WRITE = "groupwire_write"
NOWAIT = "groupwire_nowait"
# A transaction whose commit must be on disk when it returns, whatever the store's settings:
# its caller confirms it to another system (capture tells Medusa's slot it may recycle the WAL
# of what was applied), which will never send it again.
DURABLE = "groupwire_durable"
"""Execution option for a write transaction that must not queue for SQLite's write lock: its
``BEGIN IMMEDIATE`` fails at once (see :func:`is_locked`) when another writer holds the lock.
PostgreSQL ignores it."""
READ = "groupwire_read"
"""Execution option for a connection that only reads (see :func:`reading`): on PostgreSQL its
statements run without a transaction around them. SQLite ignores it."""
BUSY_TIMEOUT_MS = 30000
PING_AFTER_IDLE = 2.0
"""Seconds a pooled PostgreSQL connection may sit unused and still be lent without a ping."""
_RETURNED_AT = "groupwire_returned_at"


def is_locked(error: BaseException) -> bool:
    """Whether ``error`` is SQLite refusing a write because another writer holds the lock."""
    original = getattr(error, "orig", error)
    return isinstance(original, sqlite3.OperationalError) and "locked" in str(original)


# PostgreSQL's "connection exception" class, and the server shutting down or starting up.
_LOST_SQLSTATE_CLASS = "08"
_LOST_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
UNAVAILABLE_MESSAGE = "The database is unavailable; nothing was written. Retry later."


def connection_lost(error: BaseException) -> bool:
    """Whether ``error`` means the database connection is gone or could not be made (server
    down, connection terminated, pool exhausted), as opposed to a statement that failed.

    SQLAlchemy flags a connection that died in use (``connection_invalidated``); a failed
    connect carries a driver error without a SQLSTATE, or one of the connection classes.
    """
    if isinstance(error, PoolTimeout):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    original = error.orig
    if not isinstance(original, psycopg.OperationalError):
        return False
    sqlstate = original.sqlstate
    return (
        sqlstate is None or sqlstate.startswith(_LOST_SQLSTATE_CLASS) or sqlstate in _LOST_SQLSTATES
    )


def read_retrying(engine: Engine, read: Callable[[Connection], T]) -> T:
    """Run ``read`` on a pooled connection; if the connection turns out to be dead (cut
    between the pool's ping and the query, or during it), run it once more on a fresh one.

    A read changes nothing, so repeating it is safe. When the second try fails too, the
    database is unavailable: :class:`Unavailable` (the API answers 503).
    """
    try:
        with reading(engine) as conn:
            return read(conn)
    except (DBAPIError, PoolTimeout) as error:
        if not connection_lost(error):
            raise
        log.info("database connection lost during a read, retrying once: %s", describe(error))
    try:
        with reading(engine) as conn:
            return read(conn)
    except (DBAPIError, PoolTimeout) as error:
        if not connection_lost(error):
            raise
        raise Unavailable(UNAVAILABLE_MESSAGE) from error


def reading(engine: Engine) -> Connection:
    """A connection for reads only (``with reading(engine) as conn: ...``): on PostgreSQL
    its statements run in autocommit, without ``BEGIN``/``ROLLBACK`` round trips."""
    return engine.connect().execution_options(**{READ: True})


def describe(error: BaseException) -> str:
    """The first line of a database error's own message (no SQL, no parameters)."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()
    return f"{type(original).__name__}: {text[0] if text else ''}"


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
    # Enough connections kept open for 16 concurrent requests plus the relay's threads (the
    # built-in subscribers, the webhook dispatcher, checkpoint saves): with fewer, the ones on
    # demand are closed as soon as they are returned and reopened on the next burst (a new
    # server process each time, slower than the request). With 16 kept open, 16 clients adding
    # members opened 8-13 connections more in 8 s than the 16 of the warm-up; with 24, none.
    kwargs.setdefault("pool_size", 24)
    kwargs.setdefault("max_overflow", 4)
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "postgresql":
        _explicit_transactions(engine)
    return engine


def load_json(data: str | bytes) -> Any:
    """PostgreSQL's ``json``/``jsonb`` values as Python, for psycopg: the JSON ``null`` that
    absent metadata is stored as without parsing, anything else ``json.loads`` of the text.
    (psycopg's default, ``json.loads`` of the bytes, first guesses their encoding in Python:
    3.5 us a value, most of the time of reading a page of groups or a group's 1,000 members.
    PostgreSQL sends UTF-8.)"""
    if data == b"null":
        return None
    return json.loads(data.decode() if isinstance(data, bytes) else data)


def _explicit_transactions(engine: Engine) -> None:
    """PostgreSQL: autocommit between explicit ``BEGIN``s, reads without a transaction, and a
    ping only for a connection that sat idle (see the module docstring)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.autocommit = True
        set_json_loads(load_json, dbapi_connection)

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        # Back to autocommit after a connection that chose an isolation level of its own
        # (SQLAlchemy resets it to the dialect's default, which turns autocommit off).
        if not dbapi_connection.autocommit:
            dbapi_connection.autocommit = True
        returned = record.info.get(_RETURNED_AT)
        if returned is not None and time.monotonic() - returned >= PING_AFTER_IDLE:
            try:
                dbapi_connection.execute("SELECT 1")
            except psycopg.Error as error:  # the pool replaces it and tries another
                raise DisconnectionError(str(error)) from error

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get(READ) or options.get("isolation_level") == "AUTOCOMMIT":
            return
        # An isolation level of its own turned autocommit off: the driver begins then.
        if getattr(conn.connection.driver_connection, "autocommit", False):
            conn.exec_driver_sql("BEGIN")


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
        # WAL mode with synchronous=NORMAL syncs the WAL at checkpoints, not at each commit:
        # a power loss may take back the last commits (never corrupt the file). FULL syncs
        # at each commit; it can only be set outside a transaction, so here, when it changes.
        level = "FULL" if options.get(DURABLE, False) else "NORMAL"
        info = conn.connection.info
        if info.get("synchronous", "NORMAL") != level:
            conn.exec_driver_sql(f"PRAGMA synchronous={level}")
            info["synchronous"] = level
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


def dialect_insert(conn: Connection, table: Any) -> Any:
    """``INSERT`` into ``table`` in the dialect of ``conn`` (PostgreSQL's or SQLite's), for
    the ``ON CONFLICT`` clauses the generic ``insert`` lacks."""
    from sqlalchemy.dialects import postgresql, sqlite

    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


class CompiledOnce:
    """A constant statement that SQLAlchemy would compile anew on every execution, compiled
    once per dialect instead.

    SQLAlchemy keeps the compiled form of a statement under its cache key, but the
    PostgreSQL and SQLite ``INSERT ... ON CONFLICT`` constructs have no cache key: every
    execution compiled the statement again (0.1 ms, and about 5% of the server's CPU when
    16 clients add one member each). Only for a statement whose SQL does not depend on its
    parameters (every value a ``bindparam``, or an ``INSERT ... SELECT``), executed with one
    parameter set.
    """

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: WeakKeyDictionary[Dialect, Compiled] = WeakKeyDictionary()

    def compiled(self, dialect: Dialect) -> Compiled:
        found = self._compiled.get(dialect)
        if found is None:  # two threads may both compile it: the same SQL either way
            found = self._compiled[dialect] = self.statement.compile(dialect=dialect)
        return found

    def execute(self, conn: Connection, parameters: Mapping[str, Any]) -> CursorResult[Any]:
        # a Compiled runs as it is: Connection.execute hands it on without compiling
        return conn.execute(cast(Any, self.compiled(conn.dialect)), dict(parameters))
