"""Per-subscriber progress: the last event sequence a subscriber has finished with.

Saved after the handler ran, so a crash between the two redelivers (at least once) and never
skips. Saved every ``flush_seconds`` or ``flush_every`` events rather than after each one: a
restart then redelivers at most that many events, which idempotent handlers absorb.

Where a brand-new subscriber starts is its :class:`~groupwire.events.registry.Subscription`'s
business (:meth:`~groupwire.events.registry.Subscription.first_position`); the built-in
features start theirs with :func:`since_lowest`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Connection, Engine, func, select, update

from groupwire.events.registry import Start, Subscription
from groupwire.store import repository as repo
from groupwire.store import tables
from groupwire.store.engine import dialect_insert

T = tables.subscriber_checkpoint


def since_lowest(column: Column[Any]) -> Start:
    """A :attr:`~groupwire.events.registry.Subscription.start` for a subscriber that owes each
    row of a table the events committed after the row's start sequence (``column``: a webhook
    endpoint's, a welcome email's, a notification rule's ``start_sequence``, taken under the
    outbox counter's lock in the row's creating transaction, as
    :func:`groupwire.store.unit_of_work.change_routing` does).

    It answers the lowest of them, or the end of the log when there is no row: nothing any
    row is owed is skipped, whenever the subscriber first registers, and a store with a long
    history and no such row replays nothing. Both are read in one statement, so from one
    snapshot: a row not yet visible in it is still being created under the counter's lock,
    so the end of the log it shows is at most that row's start; a later row's start is at
    least that end.
    """
    counter = tables.outbox_counter
    lowest = select(func.min(column)).scalar_subquery()
    query = select(counter.c.last_sequence, lowest).where(counter.c.id == 1)

    def start(conn: Connection) -> int:
        end, first = conn.execute(query).one()
        return int(end) if first is None else min(int(first), int(end))

    return start


def load(engine: Engine, subscription: Subscription) -> int:
    """The subscriber's checkpoint; a new one starts where its subscription says
    (:meth:`~groupwire.events.registry.Subscription.first_position`: at the beginning, at
    the current end with ``from_now``, or at its ``start``).

    Processes that start together (workers scaled out) may all find none and record a
    start at once: the first to commit wins, the others keep it, and all return it.
    """
    subscriber = subscription.name
    with engine.connect() as conn:
        value = _stored(conn, subscriber)
        if value is not None:
            return value
        start = subscription.first_position(conn, repo.last_sequence)
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
