"""Per-subscriber progress: the last event sequence a subscriber has finished with.

Saved after the handler ran, so a crash between the two redelivers (at least once) and never
skips. Saved every ``flush_every`` events or ``flush_seconds`` rather than after each one: a
restart then redelivers at most that many events, which idempotent handlers absorb.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select, update

from groupwire.store import repository as repo
from groupwire.store import tables

T = tables.subscriber_checkpoint


def load(engine: Engine, subscriber: str, *, from_now: bool = False) -> int:
    """The subscriber's checkpoint; a new one starts at the beginning, or at the current end."""
    with engine.connect() as conn:
        value = conn.execute(
            select(T.c.last_sequence).where(T.c.subscriber == subscriber)
        ).scalar_one_or_none()
        if value is not None:
            return int(value)
        start = repo.last_sequence(conn) if from_now else 0
    save(engine, subscriber, start)
    return start


def save(engine: Engine, subscriber: str, sequence: int) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        updated = conn.execute(
            update(T)
            .where(T.c.subscriber == subscriber)
            .values(last_sequence=sequence, updated_at=now)
        ).rowcount
        if not updated:
            conn.execute(
                insert(T).values(subscriber=subscriber, last_sequence=sequence, updated_at=now)
            )
