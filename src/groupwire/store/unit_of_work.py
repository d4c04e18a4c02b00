"""The unit of work: one database transaction that writes a change and its events together.

Events decided during the transaction are buffered and written to the ``event`` table (the
outbox) just before the commit. Their sequence numbers come from the one-row
``outbox_counter``: updating it takes a row lock that is held until the commit, so event-writing
transactions hand out sequences in the order they commit, without gaps. A reader that sees
sequence N therefore already sees every sequence below N: "read everything after my cursor"
never skips an event, on PostgreSQL as on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from itertools import repeat
from types import TracebackType
from typing import overload

from sqlalchemy import Engine, bindparam, update
from sqlalchemy.engine import Connection

from groupwire.domain.changes import Context
from groupwire.domain.events import PendingEvent
from groupwire.domain.ids import EVENT, new_ids
from groupwire.domain.models import Event
from groupwire.store import bulk, tables
from groupwire.store.engine import NOWAIT, WRITE

EVENT_COLUMNS = (
    "sequence",
    "id",
    "type",
    "source",
    "subject",
    "partition",
    "time",
    "data",
    "actor",
    "correlation_id",
)


_COUNTER = tables.outbox_counter
_TAKE_SEQUENCES = (
    update(_COUNTER)
    .where(_COUNTER.c.id == 1)
    .values(last_sequence=_COUNTER.c.last_sequence + bindparam("count"))
    .returning(_COUNTER.c.last_sequence)
)


class UnitOfWork:
    """``with UnitOfWork(...) as uow: ...; uow.commit()``; leaving without commit rolls back."""

    def __init__(self, engine: Engine, *, source: str, context: Context, wait: bool = True) -> None:
        """``wait=False``: fail at once instead of queueing for SQLite's write lock."""
        self._engine = engine
        self._wait = wait
        self._source = source
        self.context = context
        self.now = datetime.now(UTC)
        self._pending: list[PendingEvent] = []
        self.committed_events: Sequence[Event] = ()
        self.connection: Connection

    def __enter__(self) -> UnitOfWork:
        self.connection = self._engine.connect().execution_options(
            **{WRITE: True, NOWAIT: not self._wait}
        )
        self._transaction = self.connection.begin()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._transaction.is_active:
                self._transaction.rollback()
        finally:
            self.connection.close()

    def emit(self, event: PendingEvent) -> None:
        self._pending.append(event)

    def emit_all(self, events: list[PendingEvent]) -> None:
        self._pending.extend(events)

    def commit(self) -> Sequence[Event]:
        """Write the buffered events and commit; returns the events as recorded."""
        events = self._write_events()
        self._transaction.commit()
        self.committed_events = events
        return events

    def _write_events(self) -> Sequence[Event]:
        count = len(self._pending)
        if not count:
            return ()
        last = self.connection.execute(_TAKE_SEQUENCES, {"count": count}).scalar_one()
        first = last - count + 1
        ids = new_ids(EVENT, count)
        pending = self._pending
        source, actor, correlation = self._source, self.context.actor, self.context.correlation_id
        at = bulk.timestamp(self.connection, self.now)
        # Column by column, zipped into rows at C speed (a bulk change writes 100,000).
        rows = list(
            zip(
                range(first, last + 1),
                ids,
                [p.type for p in pending],
                repeat(source),
                [p.subject for p in pending],
                [p.partition for p in pending],
                repeat(at),
                [p.encoded for p in pending],
                repeat(actor),
                repeat(correlation),
                strict=False,  # the repeats are endless
            )
        )
        bulk.insert_rows(self.connection, tables.event, EVENT_COLUMNS, rows)
        self._pending = []
        return CommittedEvents(pending, ids, first, self)


class CommittedEvents(Sequence[Event]):
    """The events a unit of work recorded, built as :class:`Event` objects only when read
    (a bulk change records 100,000 of them, and most listeners only need to be woken)."""

    def __init__(
        self, pending: list[PendingEvent], ids: list[str], first: int, uow: UnitOfWork
    ) -> None:
        self._pending = pending
        self._ids = ids
        self._first = first
        self._time = uow.now
        self._source = uow._source
        self._context = uow.context
        self._built: list[Event] | None = None

    def _events(self) -> list[Event]:
        if self._built is None:
            context = self._context
            self._built = [
                Event(
                    id=self._ids[offset],
                    type=p.type,
                    source=self._source,
                    subject=p.subject,
                    time=self._time,
                    data=p.data,
                    sequence=self._first + offset,
                    partition=p.partition,
                    actor=context.actor,
                    correlation_id=context.correlation_id,
                )
                for offset, p in enumerate(self._pending)
            ]
        return self._built

    def __len__(self) -> int:
        return len(self._pending)

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        return self._events()[index]

    def __iter__(self) -> Iterator[Event]:
        return iter(self._events())
