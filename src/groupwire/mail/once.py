"""Sending something at most once per event, as far as SMTP allows: the send is recorded in
``gw.idempotency`` (``processed_event``) only after the server accepted the message.

PostgreSQL: the record is inserted first, in a transaction held open while the message is
sent, and committed right after the server's ``250``; a failed send rolls it back. A second
delivery of the same event (another worker, a redelivery) waits on that row and then finds it,
so it sends nothing. SQLite: holding its single write lock across an SMTP exchange would stall
every writer (the Admin API included), so the record is checked before and written right after
the send. Either way the one window left is a crash after the server accepted the message and
before the record committed: the redelivered event then sends a second copy, with the same
``Message-ID`` (docs/use-cases.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from groupwire.events.idempotency import Idempotency, first_time


@contextmanager
def once(idempotency: Idempotency, consumer: str, event_id: str) -> Iterator[bool]:
    """``with once(gw.idempotency, "consumer", event.id) as first: if first: send()``.

    Yields False when ``consumer`` already handled the event. When the block raises, nothing
    is recorded (the event will be handled again); when it returns, the record is committed.
    """
    if idempotency.seen(consumer, event_id):
        yield False
        return
    if idempotency.engine.dialect.name == "postgresql":
        with idempotency.transaction() as conn:
            if not first_time(conn, consumer, event_id):
                yield False
                return
            yield True
        return
    yield True
    idempotency.first_time(consumer, event_id)
