"""The unit of work: one database transaction that writes a change and its events together.

Events decided during the transaction are buffered and written to the ``event`` table (the
outbox) just before the commit. Their sequence numbers come from the one-row
``outbox_counter``: updating it takes a row lock that is held until the commit, so event-writing
transactions hand out sequences in the order they commit, without gaps. A reader that sees
sequence N therefore already sees every sequence below N: "read everything after my cursor"
never skips an event, on PostgreSQL as on SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, overload

from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from groupwire.domain.changes import Context
from groupwire.domain.errors import OutcomeUnknown
from groupwire.domain.events import PendingEvent, PendingRun
from groupwire.domain.ids import EVENT, new_ids, shifted_id
from groupwire.domain.models import Event
from groupwire.store import bulk, idempotency_keys, tables
from groupwire.store.engine import DURABLE, NOWAIT, WRITE, connection_lost

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
    "span",
    "spread",
)


_COUNTER = tables.outbox_counter
_TAKE_SEQUENCES = (
    update(_COUNTER)
    .where(_COUNTER.c.id == 1)
    .values(last_sequence=_COUNTER.c.last_sequence + bindparam("count"))
    .returning(_COUNTER.c.last_sequence, _COUNTER.c.routing_version, _COUNTER.c.rules_version)
)


# PostgreSQL, a change recording one event (or one run): the sequences taken and the event
# row written in one statement, so the counter's row lock is held for that statement and the
# COMMIT only, not for a round trip more of this process.
_TAKE_AND_RECORD = (
    "WITH taken AS (UPDATE outbox_counter SET last_sequence = last_sequence + %s"
    " WHERE id = 1 RETURNING last_sequence, routing_version, rules_version)"
    f" INSERT INTO event ({', '.join(EVENT_COLUMNS)})"
    " SELECT last_sequence, %s, %s, %s, %s, %s, %s, CAST(%s AS JSONB), %s, %s, %s, %s"
    " FROM taken RETURNING sequence, (SELECT routing_version FROM taken),"
    " (SELECT rules_version FROM taken)"
)

_CHANGE_ROUTING = (
    update(_COUNTER)
    .where(_COUNTER.c.id == 1)
    .values(routing_version=_COUNTER.c.routing_version + 1)
    .returning(_COUNTER.c.last_sequence)
)


def change_routing(conn: Connection) -> int:
    """Record, in the caller's transaction, that what decides where events go changes in it
    (a webhook endpoint created, changed or deleted); returns the event-log position.

    Bumps the counter's ``routing_version``, which takes the counter's row lock until the
    commit: no event commits between this position and the change becoming visible. Every
    commit that writes events reads the version back with its sequences
    (:attr:`CommittedEvents.routing_version`), so a subscriber that caches routing
    configuration, read with the version, knows for the events of a commit whether its copy
    holds for them without reading it again.
    """
    return int(conn.execute(_CHANGE_ROUTING).scalar_one())


_CHANGE_RULES = (
    update(_COUNTER)
    .where(_COUNTER.c.id == 1)
    .values(rules_version=_COUNTER.c.rules_version + 1)
    .returning(_COUNTER.c.rules_version)
)


def change_rules(conn: Connection) -> int:
    """Record, in the caller's transaction, that smart groups' rules change in it; returns
    the new rules version.

    Like :func:`change_routing`, this takes the counter's row lock until the commit: called
    first thing in a rule's change, it makes every event-writing commit that starts later
    wait for it, and every commit that evaluated the rules of an older version fail its
    check (:attr:`UnitOfWork.expect_rules_version`) and be retried.
    """
    return int(conn.execute(_CHANGE_RULES).scalar_one())


def wait_for_rule_changes(engine: Engine) -> None:
    """Wait until no change that holds the outbox counter's lock (a rule's change is one)
    is in flight: the counter's row is locked and released at once (PostgreSQL)."""
    with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(select(_COUNTER.c.id).where(_COUNTER.c.id == 1).with_for_update())


class RulesChanged(Exception):
    """The smart groups' rules changed while this transaction evaluated older ones: it is
    rolled back and run again (``ServiceCore._transaction``)."""


OUTCOME_UNKNOWN_MESSAGE = (
    "The database connection was lost while committing: the change may or may not have been"
    " written. Read the state back, or send the request again with an Idempotency-Key header."
)


class UnitOfWork:
    """``with UnitOfWork(...) as uow: ...; uow.commit()``; leaving without commit rolls back."""

    def __init__(
        self,
        engine: Engine,
        *,
        source: str,
        context: Context,
        wait: bool = True,
        key_ttl: float = idempotency_keys.DEFAULT_TTL,
        durable: bool = False,
    ) -> None:
        """``wait=False``: fail at once instead of queueing for SQLite's write lock.

        ``durable``: the commit is on disk when :meth:`commit` returns, whatever the store's
        own settings (SQLite's ``synchronous=NORMAL``, a PostgreSQL server's
        ``synchronous_commit=off``), for a caller that then confirms it to another system.

        A ``context`` with an ``idempotency_key`` claims the key first thing in the
        transaction (see :mod:`groupwire.store.idempotency_keys`), so it commits with the
        change; ``key_ttl`` is how many seconds the key then stays in force.
        """
        self._engine = engine
        self._key_ttl = key_ttl
        self._wait = wait
        self._durable = durable
        self._source = source
        self.context = context
        self.now = datetime.now(UTC)
        self._pending: list[PendingEvent | PendingRun] = []
        self.committed_events: Sequence[Event] = ()
        self.connection: Connection
        self.expect_rules_version: int | None = None
        """Set when the change evaluated smart groups' rules of this version: the commit
        checks, under the counter's lock, that it is still the current one
        (:class:`RulesChanged` otherwise)."""
        self.changes_rules = False
        """Set by a change that sets, edits or drops a smart group's rule."""
        self.stream_rule = False
        """Set by a change whose new rule is to be applied by a sweep, in committed batches
        after the commit, rather than to every customer in its own transaction."""
        self.earliest_flip: datetime | None = None
        """The earliest smart group flip this change wrote (the scheduler is woken for it)."""
        self.after_commit: list[Callable[[], None]] = []
        """Work for after the commit (after-hooks of changes this one caused, such as a
        smart group's members following their rule), run by the service."""

    def __enter__(self) -> UnitOfWork:
        self._begin()
        if self._durable and self.connection.dialect.name == "postgresql":
            self.connection.exec_driver_sql("SET LOCAL synchronous_commit TO on")
        key = self.context.idempotency_key
        if key is not None:
            try:
                idempotency_keys.claim(
                    self.connection,
                    self.context.actor or "",
                    key,
                    self.context.request_fingerprint or "",
                    self.now,
                    self._key_ttl,
                )
            except BaseException:
                self.__exit__(None, None, None)
                raise
        return self

    def _begin(self) -> None:
        """Open the transaction. A pooled connection found dead by its ``BEGIN`` (the pool
        pings only idle ones) has sent nothing: the transaction is begun once more, on a
        fresh connection."""
        for attempt in (1, 2):
            self.connection = self._engine.connect().execution_options(
                **{WRITE: True, NOWAIT: not self._wait, DURABLE: self._durable}
            )
            try:
                self._transaction = self.connection.begin()
                return
            except DBAPIError as error:
                self.connection.close()
                if attempt == 2 or not connection_lost(error):
                    raise

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

    def emit(self, event: PendingEvent | PendingRun) -> None:
        """Record ``event`` (or a run of them) at commit; a run of one is a plain event."""
        if isinstance(event, PendingRun) and event.span <= 1:
            self._pending.extend(event.events())
        else:
            self._pending.append(event)

    def commit(self, subject: Any = None) -> Sequence[Event]:
        """Write the buffered events and commit; returns the events as recorded.

        ``subject`` is the entity the change is about, handed to the context's ``answer``
        (:class:`~groupwire.domain.changes.Answering`): with an idempotency key, the answer
        it renders here, on this transaction's connection, is written on the key's row
        before the commit, so the key and its answer commit with the change; otherwise it is
        told the subject after the commit.

        A connection lost during the COMMIT itself raises :class:`OutcomeUnknown`: the server
        may have committed before the connection went.
        """
        answering = self.context.answer
        key = self.context.idempotency_key
        if answering is not None and key is not None:
            answer = answering(subject, self.connection)
            if answer is not None:
                idempotency_keys.record_answer(
                    self.connection, self.context.actor or "", key, answer
                )
        events = self._write_events()
        try:
            self._transaction.commit()
        except DBAPIError as error:
            if connection_lost(error):
                raise OutcomeUnknown(OUTCOME_UNKNOWN_MESSAGE) from error
            raise
        self.committed_events = events
        if answering is not None and key is None:
            answering(subject, None)
        return events

    def _write_events(self) -> Sequence[Event]:
        pending = self._pending
        count = sum(item.span for item in pending)
        if not count:
            return ()
        first_id = new_ids(EVENT, 1)[0]
        source, actor, correlation = self._source, self.context.actor, self.context.correlation_id
        at = bulk.timestamp(self.connection, self.now)
        if len(pending) == 1 and self.connection.dialect.name == "postgresql":
            item = pending[0]
            spread = item.encoded_spread if isinstance(item, PendingRun) else None
            values = (item.type, source, item.subject, item.partition, at, json.dumps(item.data))
            last, routing, rules = self.connection.exec_driver_sql(
                _TAKE_AND_RECORD,
                (count, first_id, *values, actor, correlation, item.span, spread),
            ).one()
            self._check_rules(rules)
            self._pending = []
            return CommittedEvents(pending, first_id, last - count + 1, count, self, routing)
        last, routing, rules = self.connection.execute(_TAKE_SEQUENCES, {"count": count}).one()
        self._check_rules(rules)
        first = last - count + 1
        rows = []
        offset = 0
        for item in pending:
            span = item.span
            spread = item.encoded_spread if isinstance(item, PendingRun) else None
            rows.append(
                (
                    first + offset + span - 1,  # a run's row carries its last sequence
                    shifted_id(first_id, offset),
                    item.type,
                    source,
                    item.subject,
                    item.partition,
                    at,
                    json.dumps(item.data),
                    actor,
                    correlation,
                    span,
                    spread,
                )
            )
            offset += span
        bulk.insert_rows(self.connection, tables.event, EVENT_COLUMNS, rows)
        self._pending = []
        return CommittedEvents(pending, first_id, first, count, self, routing)

    def _check_rules(self, version: int) -> None:
        expected = self.expect_rules_version
        if expected is not None and expected != version:
            raise RulesChanged(f"rules version {version}, evaluated {expected}")


class CommittedEvents(Sequence[Event]):
    """The events a unit of work recorded, built as :class:`Event` objects only when read
    (a bulk change records 100,000 of them, and most listeners only need to be woken)."""

    def __init__(
        self,
        pending: list[PendingEvent | PendingRun],
        first_id: str,
        first: int,
        count: int,
        uow: UnitOfWork,
        routing_version: int,
    ) -> None:
        self._pending = pending
        self.routing_version = int(routing_version)
        """The counter's routing version these events were committed under (see
        :func:`change_routing`)."""
        self._first_id = first_id
        self._first = first
        self._count = count
        self._time = uow.now
        self._source = uow._source
        self._context = uow.context
        self._built: list[Event] | None = None

    def _events(self) -> list[Event]:
        if self._built is None:
            built: list[Event] = []
            offset = 0
            for item in self._pending:
                if isinstance(item, PendingRun):
                    built.extend(
                        self._event(item, offset + n, item.payload(n)) for n in range(item.span)
                    )
                else:
                    built.append(self._event(item, offset, item.data))
                offset += item.span
            self._built = built
        return self._built

    def _event(self, item: PendingEvent | PendingRun, offset: int, data: dict[str, Any]) -> Event:
        return Event(
            id=shifted_id(self._first_id, offset),
            type=item.type,
            source=self._source,
            subject=item.subject,
            time=self._time,
            data=data,
            sequence=self._first + offset,
            partition=item.partition,
            actor=self._context.actor,
            correlation_id=self._context.correlation_id,
        )

    def __len__(self) -> int:
        return self._count

    @property
    def first_sequence(self) -> int:
        return self._first

    @property
    def types(self) -> set[str]:
        """The event types recorded (without building the events)."""
        return {item.type for item in self._pending}

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        return self._events()[index]

    def __iter__(self) -> Iterator[Event]:
        return iter(self._events())
