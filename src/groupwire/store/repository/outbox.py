"""The outbox counter (events themselves are read through ``event_log``)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from groupwire.store import tables


def last_sequence(conn: Connection) -> int:
    return int(
        conn.execute(
            select(tables.outbox_counter.c.last_sequence).where(tables.outbox_counter.c.id == 1)
        ).scalar_one()
    )
