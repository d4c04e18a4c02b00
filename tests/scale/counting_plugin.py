"""A plugin for the fault tests' worker processes (``GROUPWIRE_PLUGINS``): subscriber
``counter`` records every event it handles in PostgreSQL, idempotently.

Tables (created by the test): ``scale_handled`` (one row per event handled, after dedupe),
``scale_partition_last`` (last sequence per partition, to catch order violations),
``scale_order_violation`` and ``scale_redelivery`` (deliveries the dedupe absorbed).
With ``GROUPWIRE_TEST_FROM_NOW=1`` the subscriber is ``from_now`` (skips what came before
its first registration).
"""

from __future__ import annotations

import os
import time

from sqlalchemy import text
from sqlalchemy.engine import Connection

from groupwire.domain.models import Event
from groupwire.events.idempotency import first_time
from groupwire.hooks import hookimpl

TABLES = """
CREATE TABLE scale_handled (event_id varchar(64) PRIMARY KEY, partition varchar(64) NOT NULL,
    sequence bigint NOT NULL, worker int NOT NULL);
CREATE TABLE scale_partition_last (partition varchar(64) PRIMARY KEY, last_sequence bigint);
CREATE TABLE scale_order_violation (event_id varchar(64), partition varchar(64),
    sequence bigint, previous bigint);
CREATE TABLE scale_redelivery (event_id varchar(64), worker int);
"""


def record(conn: Connection, event: Event) -> None:
    """The counting subscriber's effect, in the caller's transaction."""
    worker = os.getpid()
    # The bus is under test, not the disk: PostgreSQL is never crashed in these tests, so the
    # counter's commits need not wait for the WAL flush (thousands of them per second).
    conn.execute(text("SET LOCAL synchronous_commit = off"))
    if not first_time(conn, "counter", event.id):
        conn.execute(
            text("INSERT INTO scale_redelivery VALUES (:id, :w)"), {"id": event.id, "w": worker}
        )
        return
    previous = conn.execute(
        text("SELECT last_sequence FROM scale_partition_last WHERE partition = :p FOR UPDATE"),
        {"p": event.partition},
    ).scalar()
    if previous is not None and previous > event.sequence:
        conn.execute(
            text("INSERT INTO scale_order_violation VALUES (:id, :p, :s, :prev)"),
            {"id": event.id, "p": event.partition, "s": event.sequence, "prev": previous},
        )
    conn.execute(
        text(
            "INSERT INTO scale_partition_last VALUES (:p, :s) ON CONFLICT (partition) DO UPDATE "
            "SET last_sequence = GREATEST(scale_partition_last.last_sequence, :s)"
        ),
        {"p": event.partition, "s": event.sequence},
    )
    conn.execute(
        text("INSERT INTO scale_handled VALUES (:id, :p, :s, :w)"),
        {"id": event.id, "p": event.partition, "s": event.sequence, "w": worker},
    )


@hookimpl
def register_subscribers(gw) -> None:  # type: ignore[no-untyped-def]
    pause = float(os.environ.get("GROUPWIRE_TEST_HANDLER_SLEEP") or 0)

    def count(event: Event) -> None:
        if pause:
            time.sleep(pause)
        with gw.idempotency.transaction() as conn:
            record(conn, event)

    from_now = os.environ.get("GROUPWIRE_TEST_FROM_NOW") == "1"
    gw.subscribe("*", count, name="counter", from_now=from_now)
