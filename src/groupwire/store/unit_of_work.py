"""The unit of work: one database transaction that writes a change and its events together.

Events decided during the transaction are buffered and written to the ``event`` table (the
outbox) just before the commit. Their sequence numbers come from the one-row
``outbox_counter``: updating it takes a row lock that is held until the commit, so event-writing
transactions hand out sequences in the order they commit, without gaps. A reader that sees
sequence N therefore already sees every sequence below N: "read everything after my cursor"
never skips an event, on PostgreSQL as on SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from sqlalchemy import Engine, insert, update
from sqlalchemy.engine import Connection

from groupwire.domain.changes import Context
from groupwire.domain.events import PendingEvent
from groupwire.domain.ids import EVENT, new_id
from groupwire.domain.models import Event
from groupwire.store import tables
from groupwire.store.engine import WRITE


class UnitOfWork:
    """``with UnitOfWork(...) as uow: ...; uow.commit()``; leaving without commit rolls back."""

    def __init__(self, engine: Engine, *, source: str, context: Context) -> None:
        self._engine = engine
        self._source = source
        self.context = context
        self.now = datetime.now(UTC)
        self._pending: list[PendingEvent] = []
        self.committed_events: list[Event] = []
        self.connection: Connection

    def __enter__(self) -> UnitOfWork:
        self.connection = self._engine.connect().execution_options(**{WRITE: True})
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

    def commit(self) -> list[Event]:
        """Write the buffered events and commit; returns the events as recorded."""
        events = self._write_events()
        self._transaction.commit()
        self.committed_events = events
        return events

    def _write_events(self) -> list[Event]:
        count = len(self._pending)
        if not count:
            return []
        last = self.connection.execute(
            update(tables.outbox_counter)
            .where(tables.outbox_counter.c.id == 1)
            .values(last_sequence=tables.outbox_counter.c.last_sequence + count)
            .returning(tables.outbox_counter.c.last_sequence)
        ).scalar_one()
        first = last - count + 1
        events = [
            Event(
                id=new_id(EVENT),
                type=pending.type,
                source=self._source,
                subject=pending.subject,
                time=self.now,
                data=pending.data,
                sequence=first + offset,
                partition=pending.partition,
                actor=self.context.actor,
                correlation_id=self.context.correlation_id,
            )
            for offset, pending in enumerate(self._pending)
        ]
        rows: list[dict[str, Any]] = [
            {
                "sequence": e.sequence,
                "id": e.id,
                "type": e.type,
                "source": e.source,
                "subject": e.subject,
                "partition": e.partition,
                "time": e.time,
                "data": e.data,
                "actor": e.actor,
                "correlation_id": e.correlation_id,
            }
            for e in events
        ]
        self.connection.execute(insert(tables.event), rows)
        self._pending.clear()
        return events
