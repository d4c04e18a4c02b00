"""Per-subscriber progress: the last event sequence a subscriber has finished with.

Saved after the handler ran, so a crash between the two redelivers (at least once) and never
skips. Saved every ``flush_seconds`` or ``flush_every`` events rather than after each one: a
restart then redelivers at most that many events, which idempotent handlers absorb.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, select, update

from groupwire.store import repository as repo
from groupwire.store import tables
from groupwire.store.engine import dialect_insert

T = tables.subscriber_checkpoint


def load(engine: Engine, subscriber: str, *, from_now: bool = False) -> int:
    """The subscriber's checkpoint; a new one starts at the beginning, or at the current end.

    Processes that start together (workers scaled out) may all find none and record a
    start at once: the first to commit wins, the others keep it, and all return it.
    """
    with engine.connect() as conn:
        value = _stored(conn, subscriber)
        if value is not None:
            return value
        start = repo.last_sequence(conn) if from_now else 0
    with engine.begin() as conn:
        row = {"subscriber": subscriber, "last_sequence": start, "updated_at": datetime.now(UTC)}
        conn.execute(
            dialect_insert(conn, T)
            .values(row)
            .on_conflict_do_nothing(index_elements=["subscriber"])
        )
        value = _stored(conn, subscriber)
    return start if value is None else value


def save(engine: Engine, subscriber: str, sequence: int) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        updated = conn.execute(
            update(T)
            .where(T.c.subscriber == subscriber)
            .values(last_sequence=sequence, updated_at=now)
        ).rowcount
        if not updated:
            statement = dialect_insert(conn, T).values(
                subscriber=subscriber, last_sequence=sequence, updated_at=now
            )
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["subscriber"],
                    set_={"last_sequence": sequence, "updated_at": now},
                )
            )


def _stored(conn: Connection, subscriber: str) -> int | None:
    value = conn.execute(
        select(T.c.last_sequence).where(T.c.subscriber == subscriber)
    ).scalar_one_or_none()
    return None if value is None else int(value)
