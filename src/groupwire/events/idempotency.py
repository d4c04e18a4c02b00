"""Idempotent handling: make at-least-once delivery look exactly-once to a subscriber.

Every delivery carries the event id (``event.id``, the CloudEvents ``id``). A subscriber whose
effect lives in the database records "consumer C processed event E" in ``processed_event`` in
the SAME transaction as its effect: if the transaction commits, both are there; if it fails,
neither is, and the redelivered event is handled again. A second delivery finds the record
and does nothing.

    @gw.subscriber("customer_group.customer_added", name="loyalty")
    @gw.idempotency.handler("loyalty")
    def award_points(event, conn):       # conn: the open transaction
        conn.execute(...)

or, by hand::

    with engine.begin() as conn:
        if first_time(conn, "loyalty", event.id):
            conn.execute(...)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.engine import Connection

from groupwire.domain.models import Event
from groupwire.store.engine import WRITE, dialect_insert
from groupwire.store.tables import processed_event

T = processed_event

ConnHandler = Callable[[Event, Connection], Any]


def first_time(conn: Connection, consumer: str, event_id: str) -> bool:
    """Record that ``consumer`` processes ``event_id``; True only the first time.

    Call it inside the transaction that holds the consumer's effect. On PostgreSQL two
    concurrent first deliveries of one event serialise on the primary key: the second waits
    for the first to commit (then gets False) or roll back (then gets True).
    """
    values = {"consumer": consumer, "event_id": event_id, "processed_at": datetime.now(UTC)}
    if conn.dialect.name in ("postgresql", "sqlite"):
        statement = (
            dialect_insert(conn, T)
            .values(**values)
            .on_conflict_do_nothing()
            .returning(T.c.event_id)
        )
        return conn.execute(statement).first() is not None
    # other databases: ask first (fine under the consumer's own serialisation)
    if seen(conn, consumer, event_id):
        return False
    conn.execute(insert(T).values(**values))
    return True


def seen(conn: Connection, consumer: str, event_id: str) -> bool:
    found = conn.execute(
        select(T.c.event_id).where(T.c.consumer == consumer, T.c.event_id == event_id)
    ).first()
    return found is not None


class Idempotency:
    """``gw.idempotency``: processed-event records in the Groupwire database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def transaction(self) -> Any:
        """A write transaction on the Groupwire database (``with ... as conn``)."""
        return _WriteTransaction(self.engine)

    def first_time(self, consumer: str, event_id: str, conn: Connection | None = None) -> bool:
        """True the first time ``consumer`` processes ``event_id``. Pass ``conn`` to record it
        in your own transaction (the point of the helper); without it, it commits at once."""
        if conn is not None:
            return first_time(conn, consumer, event_id)
        with self.transaction() as own:
            return first_time(own, consumer, event_id)

    def seen(self, consumer: str, event_id: str) -> bool:
        with self.engine.connect() as conn:
            return seen(conn, consumer, event_id)

    def handler(self, consumer: str) -> Callable[[ConnHandler], Callable[[Event], Any]]:
        """Decorator turning ``fn(event, conn)`` into an idempotent subscriber handler: ``fn``
        runs in a transaction that also records the event as processed, at most once."""

        def wrap(fn: ConnHandler) -> Callable[[Event], Any]:
            @functools.wraps(fn)
            def handle(event: Event) -> Any:
                with self.transaction() as conn:
                    if not first_time(conn, consumer, event.id):
                        return None
                    return fn(event, conn)

            return handle

        return wrap

    def forget(self, consumer: str, *, before: datetime) -> int:
        """Delete ``consumer``'s records older than ``before`` (after events can no longer be
        redelivered, e.g. once streams were trimmed past them); returns how many."""
        with self.transaction() as conn:
            result = conn.execute(
                delete(T).where(T.c.consumer == consumer, T.c.processed_at < before)
            )
            return int(result.rowcount or 0)


def idempotent(
    target: Engine | Any, consumer: str
) -> Callable[[ConnHandler], Callable[[Event], Any]]:
    """``@idempotent(gw_or_engine, "consumer")``: see :meth:`Idempotency.handler`."""
    engine = target if isinstance(target, Engine) else target.engine
    return Idempotency(engine).handler(consumer)


class _WriteTransaction:
    """``engine.begin()`` marked as a write (SQLite takes its write lock at BEGIN)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __enter__(self) -> Connection:
        self._conn = self._engine.connect().execution_options(**{WRITE: True})
        self._tx = self._conn.begin()
        return self._conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self._tx.commit()
            else:
                self._tx.rollback()
        finally:
            self._conn.close()
