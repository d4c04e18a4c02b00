"""The capture loop: Medusa's committed transactions become Groupwire's copy and events.

Capture reads the slot through the streaming replication protocol
(``groupwire.medusa.stream``): the server pushes each committed transaction, whole and in
commit order, as soon as its commit is flushed. For each one (:meth:`MedusaCapture.pump`):

1. when its Commit message arrives, it is applied as ONE Groupwire transaction, through
   :meth:`groupwire.service.Service.apply_external_change`: the copy, the events and the new
   stream position (the end LSN of Medusa's commit, ``medusa_stream``) commit together; a
   transaction at or below the stored position is skipped;
2. then a standby status update confirms its end LSN to the slot (``flushed``), which lets
   PostgreSQL recycle that WAL. The confirmed position is never ahead of what Groupwire has
   committed: a crash between 1 and 2 makes the slot send the same transaction again, and
   step 1 skips it. Nothing is lost, nothing doubled.

A large transaction (:data:`CHUNK_ROWS` row changes or more) is applied while it streams in
(:class:`_Partial`): the server sends a transaction only once Medusa has committed it, so
nothing of it can be rolled back any more, and decoding the rest, writing the copy of what has
come and the server's decoding of what follows all overlap. Its Groupwire transaction is
opened at the first chunk and stays open, uncommitted, until the Commit message; the events
of its membership runs and the position are written then, as for any other. If the stream
breaks (or stalls, or the Groupwire database refuses a piece) before the Commit, that
transaction is rolled back: nothing of it is committed, and it is applied whole when the slot
sends it again (or, after a refused piece, at its Commit through the usual path, which
retries deadlocks).

The position is written last in each Groupwire transaction, by a conditional update
(``lsn < end``): when two processes apply the same Medusa transaction (the slot lets only one
read at a time, but an old connection may linger), the second finds the position moved and
rolls back everything it wrote.

When Medusa is busy with other tables only, nothing of ours comes out of the slot. The
server then sends keepalives carrying the end of the WAL it has decoded; with no transaction
of ours in flight (none begun and not yet applied), everything that committed before that
point has been sent and applied, or held nothing of ours, so capture confirms it and the slot
keeps no WAL for nothing.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from groupwire.domain import events as ev
from groupwire.domain.addresses import ADDRESS_FIELDS, CustomerAddress
from groupwire.domain.changes import Context
from groupwire.domain.models import Customer, CustomerGroup
from groupwire.medusa import slot as slots
from groupwire.medusa import tables as bookkeeping
from groupwire.medusa.decoding import TransactionDecoder
from groupwire.medusa.mapping import MedusaTransaction, TransactionApplier, apply_transaction
from groupwire.medusa.orders import (
    MedusaOrders,
    backfill,
    has_orders,
    import_orders,
    read_orders,
    resync_orders,
)
from groupwire.medusa.resync import resync_state
from groupwire.medusa.stream import Keepalive, ReplicationStream
from groupwire.medusa.tables import (
    medusa_membership,
    medusa_order,
    medusa_order_summary,
    medusa_stream,
)
from groupwire.service import AfterHook, ExternalChange, Service
from groupwire.store import bulk, tables
from groupwire.store.address_tables import customer_address
from groupwire.store.engine import connection_lost
from groupwire.store.order_tables import customer_order
from groupwire.store.statistics import refresh_statistics
from groupwire.store.unit_of_work import UnitOfWork

log = logging.getLogger("groupwire.medusa")

CHUNK_ROWS = 2_000  # row changes of a transaction in progress applied at once (see _Partial)
STALL_SECONDS = 1.0  # no message for this long inside a large transaction: roll its piece back
STATUS_INTERVAL = 10.0  # seconds between two unasked status updates (wal_sender_timeout: 60)
RECONNECT_DELAY = 1.0
# What the initial import fills: PostgreSQL plans capture's first transactions from their
# statistics, gathered at once after the import (see groupwire.store.statistics).
IMPORTED_TABLES = (
    tables.customer_group,
    tables.customer,
    tables.membership,
    customer_address,
    medusa_membership,
    customer_order,
    medusa_order,
    medusa_order_summary,
)
Initial = Literal["silent", "events"]


class CaptureError(RuntimeError):
    """The slot and Groupwire's position disagree, or Medusa's database refuses capture."""


class SlotInvalidated(CaptureError):
    """PostgreSQL invalidated the slot (``wal_status`` ``lost``): capture cannot go on from
    it, and does not try again (see ``slots.invalidated_way_out``)."""


class _AppliedElsewhere(Exception):
    """Another process committed this Medusa transaction first: roll back what we wrote."""


@dataclass(frozen=True)
class CaptureOptions:
    """Where Medusa is and how to read it.

    ``initial``: what the first start does with the groups, customers and memberships Medusa
    already has: ``silent`` copies them without events (subscribers hear of changes from then
    on), ``events`` records them as ``created`` / ``customer_added`` events (a welcome email
    for every existing member: choose it knowingly). ``read_timeout``: how long one read of
    the stream waits for a message (how soon a stop request is seen).
    """

    medusa_url: str
    slot: str = "groupwire"
    publication: str = "groupwire_medusa"
    schema: str = "public"
    read_timeout: float = 0.2
    initial: Initial = "silent"
    resync: bool = False

    def __post_init__(self) -> None:
        slots.check_name(self.slot, "slot")
        slots.check_name(self.publication, "publication")
        if self.initial not in ("silent", "events"):
            raise ValueError("initial must be 'silent' or 'events'")


@dataclass(frozen=True)
class CaptureStatus:
    slot: str
    slot_exists: bool
    active: bool
    position: int | None  # end LSN of the last applied Medusa commit
    confirmed_lsn: int | None
    current_lsn: int | None
    lag_bytes: int | None
    applied_at: datetime | None
    wal_status: str | None = None  # reserved, extended, unreserved, lost (invalidated)
    safe_wal_size: int | None = None  # None without max_slot_wal_keep_size

    @property
    def warning(self) -> str | None:
        """What an operator must hear of at once, if anything."""
        if self.wal_status == "lost":
            return slots.invalidated_way_out(self.slot)
        if self.wal_status == "unreserved":
            return (
                f"replication slot {self.slot!r} retains more WAL than max_slot_wal_keep_size:"
                " PostgreSQL invalidates it at its next checkpoint unless capture catches up"
            )
        return None

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        for name in ("position", "confirmed_lsn", "current_lsn"):
            if values[name] is not None:
                values[name] = slots.lsn_to_text(values[name])
        return values


class _Partial:
    """The Groupwire transaction of a Medusa transaction applied while it streams in.

    ``change`` is None when the transaction turned out to be applied already (its Begin is
    at or before the stored position) or when applying it in pieces failed (``fallback``:
    it is applied whole at its Commit)."""

    __slots__ = ("applier", "change", "done", "fallback", "final_lsn", "waiting")

    def __init__(self, final_lsn: int) -> None:
        self.final_lsn = final_lsn
        self.change: ExternalChange | None = None
        self.applier: TransactionApplier | None = None
        self.done = 0  # the transaction's row changes applied so far
        self.fallback = False
        self.waiting = False  # the rest waits for the Commit (an address change came)

    def rollback(self) -> None:
        change, self.change, self.applier = self.change, None, None
        if change is not None:
            try:
                change.rollback()
            except Exception:
                log.debug("rolling back a partly applied transaction failed", exc_info=True)


class MedusaCapture:
    """Capture from one Medusa database into one Groupwire store (``service``'s engine).

    Not thread-safe: one thread pumps (:meth:`run`, or :meth:`pump` / :meth:`catch_up`).
    """

    def __init__(self, service: Service, options: CaptureOptions) -> None:
        self.service = service
        self.engine: Engine = service.engine
        self.options = options
        self.decoder = TransactionDecoder(options.schema)
        self._conn: psycopg.Connection[Any] | None = None
        self._stream: ReplicationStream | None = None
        self._position = 0  # Groupwire's stored position, as last read or written
        self._received = 0  # the furthest WAL position the server has told us about
        self._confirmed = 0  # the last ``flushed`` position sent to the server
        self._status_sent = 0.0
        self.applied = 0  # transactions applied by this process
        self._partial: _Partial | None = None  # a large transaction being applied in pieces
        self._read_at = 0.0  # time.monotonic() when a pump last read a message
        self.on_applied: list[Callable[[MedusaTransaction], None]] = []

    # --- installation -------------------------------------------------------------------

    def install(self) -> str:
        """Make sure the publication, the slot and Groupwire's position exist and agree.

        On first start: creates the publication and the slot, copies Medusa's current state
        from the slot's exported snapshot (see ``CaptureOptions.initial``) and stores the
        slot's consistent point as the position, in one Groupwire transaction, then has
        PostgreSQL gather the planner statistics of the tables it filled (capture's first
        transactions would otherwise be planned as if they were empty).

        When the store already holds a copy but the slot is gone, or lost (PostgreSQL
        invalidated it), or the position was forgotten: what Medusa changed meanwhile never
        came through. With ``CaptureOptions.resync`` the same steps re-sync the copy instead
        of copying: a new slot first, then Medusa's state as its snapshot saw it compared
        with the copy, the differences written with their events
        (:mod:`groupwire.medusa.resync`) and the slot's consistent point stored as the
        position, in one Groupwire transaction. Every change committed after the snapshot
        comes through the new slot, everything before it is in the snapshot: nothing is
        missed, nothing told twice. Without ``resync`` it refuses (:class:`CaptureError`).

        Returns ``"created"``, ``"resumed"`` or ``"resynced"``.
        """
        bookkeeping.require(self.engine)
        conn = self.connection()
        try:
            added = slots.ensure_publication(conn, self.options.publication, self.options.schema)
        except slots.PublicationDenied as error:
            raise CaptureError(str(error)) from None
        state = slots.slot_state(conn, self.options.slot)
        position = self.position()
        lost = state is not None and state.invalidated
        if lost and not self.options.resync:
            raise SlotInvalidated(slots.invalidated_way_out(self.options.slot))
        if state is not None and position is not None and not lost:
            if (added and "order" in added) or not has_orders(self.engine):
                # installed before capture read orders (or that copy did not commit)
                emit = self.options.initial == "events"
                backfill(self.service, self.options.medusa_url, self.options.schema, emit=emit)
            return "resumed"
        if state is not None and position is None:
            raise CaptureError(
                f"replication slot {self.options.slot!r} exists but this Groupwire store has no"
                " position for it (another store uses it?): pick another --slot, or drop it"
                " with `groupwire medusa uninstall`"
            )
        resync = position is not None or holds_copy(self.engine)
        if resync and not self.options.resync:
            raise CaptureError(self._blind(lost, position is not None))
        if position is not None:
            # No process may resume from the old position while this one re-syncs (it would
            # stream the new slot onto a copy not re-synced yet): without it, the new slot
            # is refused as "no position" until the re-sync has committed its own.
            with self.engine.begin() as gw_conn:
                S = medusa_stream
                gw_conn.execute(delete(S).where(S.c.slot == self.options.slot))
        if lost:  # ours (the position said so), and it can never stream again
            conn.execute("SELECT pg_drop_replication_slot(%s)", (self.options.slot,))
        url = self.options.medusa_url
        correlation = "medusa:resync" if resync else "medusa:snapshot"
        with slots.create_slot(url, self.options.slot) as new:
            try:
                with slots.snapshot_connection(url, new.snapshot) as snapshot:
                    state_now = read_state(snapshot, self.options.schema)
                    orders_now = read_orders(snapshot, self.options.schema)
                self.service.apply_external_change(
                    lambda uow: self._import(uow, state_now, new, orders_now, resync=resync),
                    context=Context(correlation_id=correlation),
                    durable=True,
                )
            except BaseException:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (self.options.slot,))
                raise
        # Outside the block above: the import is committed, so nothing here may drop the slot.
        refresh_statistics(self.engine, IMPORTED_TABLES)
        return "resynced" if resync else "created"

    def _blind(self, lost: bool, positioned: bool) -> str:
        slot = repr(self.options.slot)
        if lost:
            what = f"replication slot {slot} is lost (PostgreSQL removed the WAL it needed)"
        elif positioned:
            what = f"replication slot {slot} is gone but this store captured from it"
        else:
            what = "this Groupwire store already holds a copy but has no capture position"
        return (
            f"{what}: changes made in Medusa since capture last read are missing. Re-sync the"
            " copy and capture again with `groupwire medusa capture --resync` (it records"
            " every difference as events; docs/medusa.md, Recovery)"
        )

    def _import(
        self,
        uow: UnitOfWork,
        state: MedusaState,
        new: slots.NewSlot,
        orders: MedusaOrders,
        *,
        resync: bool,
    ) -> tuple[None, list[AfterHook]]:
        hooks: list[AfterHook] = []
        if resync:
            counts, hooks = resync_state(uow, state)
            counts["order facts"] = resync_orders(uow, orders)
            log.info("re-sync: %s", ", ".join(f"{n} {what}" for what, n in counts.items()))
        else:
            import_state(uow, state, emit=self.options.initial == "events")
            import_orders(uow, orders, emit=self.options.initial == "events")
        conn = uow.connection
        conn.execute(delete(medusa_stream).where(medusa_stream.c.slot == new.name))
        conn.execute(
            insert(medusa_stream).values(
                slot=new.name, lsn=new.consistent_lsn, applied_at=datetime.now(UTC)
            )
        )
        return None, hooks

    # --- the loop -----------------------------------------------------------------------

    def run(
        self,
        stop: threading.Event,
        on_failure: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        """Read and apply until ``stop`` is set. A failure (Medusa's or Groupwire's database
        gone, the slot busy with another process) closes the stream and starts it again
        after a pause, from the slot's confirmed position: nothing is skipped. An invalidated
        slot is raised (:class:`SlotInvalidated`): no retry can read it again.
        ``on_failure`` hears of each failure, and of ``None`` once the stream works (again).

        First it moves the objects the process holds at that point (modules, the app, the
        engine: they live as long as it) out of the cyclic garbage collector's way
        (``gc.freeze``): a large transaction holds tens of thousands of new objects while it
        is applied, enough to set off a full collection, which otherwise walks every object
        of the process (measured: 130-200 ms in the middle of a 10,000-row transaction, in
        the benchmark's process). The price: cyclic garbage among those objects, should some
        of them become garbage later, is never collected."""
        gc.freeze()
        failures = 0
        healthy: bool | None = None
        while not stop.is_set():
            try:
                self.pump(self.options.read_timeout)
            except SlotInvalidated:
                self.close()
                raise  # no retry can help
            except Exception as error:
                failures += 1
                logger = log.warning if failures == 1 or failures % 60 == 0 else log.debug
                logger("capture failed (%s); starting the stream again", _one_line(error))
                healthy = False
                if on_failure is not None:
                    on_failure(error)
                self.close()
                stop.wait(RECONNECT_DELAY)
                continue
            if failures:
                log.info("capture from slot %r reads the stream again", self.options.slot)
            failures = 0
            if not healthy:
                healthy = True
                if on_failure is not None:
                    on_failure(None)

    def pump(self, timeout: float, limit: int = 10_000) -> int:
        """Handle the stream's messages: wait up to ``timeout`` seconds for the first, then
        take those already here (at most ``limit``). Returns the Medusa transactions applied."""
        stream = self.stream()
        applied = 0
        decoder = self.decoder
        message = stream.read(timeout)
        if message is not None:
            self._read_at = time.monotonic()
        elif self._partial is not None and time.monotonic() - self._read_at > STALL_SECONDS:
            # The stream stalled inside a large transaction: do not hold Groupwire's write
            # transaction open meanwhile; it is applied whole at its Commit.
            self._abandon_partial("the stream stalled", fallback=True)
        handled = 0
        while message is not None:
            if isinstance(message, Keepalive):
                self._keepalive(stream, message)
            else:
                self._received = max(self._received, message.wal_end)
                transaction = decoder.feed(message.data)
                if transaction is not None:
                    applied += self._transaction(stream, transaction)
                elif len(decoder.changes) >= CHUNK_ROWS:
                    self._apply_some()
            handled += 1
            if handled >= limit:
                break  # (read no further: a message read is a message to handle)
            message = stream.read(0)
        if time.monotonic() - self._status_sent > STATUS_INTERVAL:
            self._send_status(stream)
        return applied

    def catch_up(self, lsn: int, timeout: float = 60.0) -> None:
        """Pump until the server has sent everything up to ``lsn`` (a WAL position of
        Medusa's database) and all of it is applied: tests, benchmarks, scripts."""
        deadline = time.monotonic() + timeout
        while self._received < lsn or self.decoder.in_transaction:
            if time.monotonic() > deadline:
                raise TimeoutError(f"capture did not reach {slots.lsn_to_text(lsn)}")
            self.pump(0.1)

    def _transaction(self, stream: ReplicationStream, transaction: MedusaTransaction) -> int:
        partial, self._partial = self._partial, None
        if partial is not None and partial.change is not None:
            applied = self._finish_partial(partial, transaction)
        elif partial is not None and not partial.fallback:
            applied = False  # found applied already at its first chunk
        else:
            applied = transaction.end_lsn > self._position and self._apply(transaction)
        self._position = max(self._position, transaction.end_lsn)
        if applied:
            self.applied += 1
            for listener in list(self.on_applied):
                listener(transaction)
        self._confirmed = max(self._confirmed, transaction.end_lsn)
        self._send_status(stream)
        return int(applied)

    def _keepalive(self, stream: ReplicationStream, keepalive: Keepalive) -> None:
        # Always answered: the server sends its next keepalive (when its decoding moves on
        # again) only once the last one has had a reply.
        self._received = max(self._received, keepalive.wal_end)
        if not self.decoder.in_transaction:
            self._confirmed = max(self._confirmed, keepalive.wal_end)  # idle: see above
        self._send_status(stream)

    def _send_status(self, stream: ReplicationStream) -> None:
        stream.send_status(written=max(self._received, self._confirmed), flushed=self._confirmed)
        self._status_sent = time.monotonic()

    def _apply_some(self) -> None:
        """Apply the row changes of the transaction in progress read since the last call
        (there are at least CHUNK_ROWS), opening its Groupwire transaction at the first."""
        decoder = self.decoder
        begin = decoder.begin
        if begin is None:
            return
        partial = self._partial
        if partial is None:
            partial = self._partial = _Partial(begin.final_lsn)
            if self._position > begin.final_lsn:
                return  # applied already (the commit record ends after its start)
            self._open_partial(partial, begin.xid, begin.commit_time)
        if partial.applier is None or partial.waiting:
            return
        changes = decoder.changes
        if len(changes) - partial.done < CHUNK_ROWS:
            return
        try:
            given = changes[partial.done :]
            applied = partial.applier.apply(given, complete=False)
            partial.done += applied
            partial.waiting = applied < len(given)
            partial.applier.write()
        except Exception as error:
            self._refused(partial, error)

    def _open_partial(self, partial: _Partial, xid: int, committed_at: datetime) -> None:
        S = medusa_stream
        try:
            change = self.service.begin_external_change(
                context=Context(correlation_id=f"medusa:{xid}"), at=committed_at, durable=True
            )
        except Exception as error:
            self._refused(partial, error)
            return
        partial.change = change
        try:
            stored = change.uow.connection.execute(
                select(S.c.lsn).where(S.c.slot == self.options.slot)
            ).scalar()
        except Exception as error:
            self._refused(partial, error)
            return
        if stored is None:
            partial.fallback = True  # _apply at the Commit says what is wrong
            partial.rollback()
        elif stored > partial.final_lsn:
            partial.rollback()  # applied already (another process, or before a restart)
        else:
            partial.applier = TransactionApplier(change.uow)

    def _refused(self, partial: _Partial, error: Exception) -> None:
        """The Groupwire database refused a piece: roll back; a lost connection fails the
        pump (the stream starts again), anything else is tried again whole at the Commit."""
        partial.rollback()
        partial.fallback = True
        if isinstance(error, DBAPIError | PoolTimeout) and connection_lost(error):
            raise error
        log.info("applying a large transaction in pieces failed (%s); applying it whole", error)

    def _abandon_partial(self, why: str, *, fallback: bool) -> None:
        partial = self._partial
        if partial is None:
            return
        if partial.change is not None:
            log.info("rolling back a partly applied transaction: %s", why)
        partial.rollback()
        partial.fallback = fallback
        if not fallback:
            self._partial = None

    def _finish_partial(self, partial: _Partial, transaction: MedusaTransaction) -> bool:
        """Apply the rest of a transaction applied in pieces, then its position, and commit."""
        assert partial.change is not None and partial.applier is not None
        change, applier = partial.change, partial.applier
        try:
            applier.apply(transaction.changes[partial.done :], complete=True)
            context = transaction.context()
            hooks = applier.finish(context)
            if not self._move_position(change.uow, transaction):
                partial.rollback()
                return False  # another process committed it first
            change.commit(hooks, context)
        except Exception as error:
            # Nothing committed (or, the connection lost during the COMMIT, maybe: _apply
            # reads the position again before writing anything)
            self._refused(partial, error)
            return self._apply(transaction)
        return True

    def _move_position(self, uow: UnitOfWork, transaction: MedusaTransaction) -> bool:
        """The conditional position update, last in the Groupwire transaction: False when
        the position has moved past ``transaction`` (another process applied it)."""
        S = medusa_stream
        moved = uow.connection.execute(
            update(S)
            .where(S.c.slot == self.options.slot, S.c.lsn < transaction.end_lsn)
            .values(
                lsn=transaction.end_lsn,
                xid=transaction.xid,
                committed_at=transaction.committed_at,
                applied_at=datetime.now(UTC),
            )
        ).rowcount
        return bool(moved == 1)

    def _apply(self, transaction: MedusaTransaction) -> bool:
        """Apply ``transaction`` unless it was applied already; True when this call did."""
        S = medusa_stream

        def work(uow: UnitOfWork) -> tuple[bool, list[AfterHook]]:
            conn = uow.connection
            stored = conn.execute(select(S.c.lsn).where(S.c.slot == self.options.slot)).scalar()
            if stored is None:
                raise CaptureError(f"no stream position for slot {self.options.slot!r}")
            if stored >= transaction.end_lsn:
                return False, []  # applied already (this store's commit reached it first)
            hooks = apply_transaction(uow, transaction)
            # After the copy (the unit of work writes the events at its commit): whoever
            # holds the row holds this transaction with its copy written, uncommitted.
            if not self._move_position(uow, transaction):
                raise _AppliedElsewhere
            return True, hooks

        try:
            return self.service.apply_external_change(
                work, context=transaction.context(), at=transaction.committed_at, durable=True
            )
        except _AppliedElsewhere:
            return False

    # --- state ----------------------------------------------------------------------------

    def position(self) -> int | None:
        S = medusa_stream
        with self.engine.connect() as conn:
            value = conn.execute(select(S.c.lsn).where(S.c.slot == self.options.slot)).scalar()
        return None if value is None else int(value)

    def status(self) -> CaptureStatus:
        return capture_status(self.engine, self.connection(), self.options.slot)

    def connection(self) -> psycopg.Connection[Any]:
        """An ordinary connection to Medusa's database (slot state, publication)."""
        if self._conn is None or self._conn.closed:
            self._conn = slots.connect(self.options.medusa_url)
        return self._conn

    def stream(self) -> ReplicationStream:
        """The replication stream, started from Groupwire's position when not open."""
        if self._stream is None or self._stream.closed:
            position = self.position()
            if position is None:
                raise CaptureError(f"capture from slot {self.options.slot!r} is not installed")
            state = slots.slot_state(self.connection(), self.options.slot)
            if state is None:
                raise CaptureError(
                    f"replication slot {self.options.slot!r} is gone: changes made since are"
                    " missing; stop capture and re-sync with `groupwire medusa capture"
                    " --resync` (docs/medusa.md, Recovery)"
                )
            if state.invalidated:
                raise SlotInvalidated(slots.invalidated_way_out(self.options.slot))
            self.decoder.reset()
            self._abandon_partial("the stream starts again", fallback=False)
            self._position = position
            self._confirmed = max(position, state.confirmed_flush_lsn or 0)
            self._received = self._confirmed
            # From the slot's confirmed position: what Groupwire applied past it (a crash
            # before the status update) comes again and is skipped by ``_transaction``.
            self._stream = ReplicationStream(
                self.options.medusa_url,
                self.options.slot,
                self.options.publication,
                state.confirmed_flush_lsn or 0,
            )
            self._status_sent = time.monotonic()
        return self._stream

    def close(self) -> None:
        self._abandon_partial("the stream is closed", fallback=False)
        for closing in (self._stream, self._conn):
            if closing is not None:
                try:
                    closing.close()
                except Exception:
                    log.debug("closing a connection to Medusa's database failed", exc_info=True)
        self._stream, self._conn = None, None


def _one_line(error: BaseException) -> str:
    """An error as one log line: a database error's own message (SQLAlchemy's adds the
    statement and a link on further lines), its first line."""
    text = str(getattr(error, "orig", None) or error).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(error).__name__


def holds_copy(engine: Engine) -> bool:
    """Whether the store holds groups or customers already (a copy, deleted rows included)."""
    with engine.connect() as conn:
        for table in (tables.customer_group, tables.customer):
            if conn.execute(select(table.c.id).limit(1)).first() is not None:
                return True
    return False


def capture_status(engine: Engine, conn: psycopg.Connection[Any], slot: str) -> CaptureStatus:
    """The slot as PostgreSQL sees it and the position as Groupwire stored it."""
    S = medusa_stream
    row = None
    if bookkeeping.exists(engine):
        with engine.connect() as gw_conn:
            row = gw_conn.execute(select(S.c.lsn, S.c.applied_at).where(S.c.slot == slot)).first()
    state = slots.slot_state(conn, slot)
    return CaptureStatus(
        slot=slot,
        slot_exists=state is not None,
        active=bool(state and state.active),
        position=int(row[0]) if row else None,
        confirmed_lsn=state.confirmed_flush_lsn if state else None,
        current_lsn=state.current_lsn if state else None,
        lag_bytes=state.lag_bytes if state else None,
        applied_at=row[1] if row else None,
        wal_status=state.wal_status if state else None,
        safe_wal_size=state.safe_wal_size if state else None,
    )


# --- the initial copy ----------------------------------------------------------------------


@dataclass
class MedusaState:
    """Medusa's live rows as one snapshot saw them."""

    groups: list[CustomerGroup]
    customers: list[Customer]
    addresses: list[CustomerAddress]
    memberships: list[dict[str, Any]]  # every membership row: id, group, customer, ...


def read_state(conn: psycopg.Connection[Any], schema: str) -> MedusaState:
    """Read the four tables in ``conn``'s transaction (the slot's snapshot)."""
    from psycopg.rows import dict_row

    def rows(query: str) -> list[dict[str, Any]]:
        with conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(query.replace("{s}", '"' + schema.replace('"', '""') + '"'))
            return cursor.fetchall()

    groups = [
        CustomerGroup(
            id=r["id"],
            name=r["name"] or "",
            description=None,
            metadata=r["metadata"],
            created_by=r["created_by"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
        )
        for r in rows(
            "SELECT id, name, metadata, created_by, created_at, updated_at"
            " FROM {s}.customer_group WHERE deleted_at IS NULL ORDER BY created_at, id"
        )
    ]
    customers = [
        Customer(**r)
        for r in rows(
            "SELECT id, email, first_name, last_name, company_name, phone, has_account,"
            " metadata, created_by, created_at, updated_at"
            " FROM {s}.customer WHERE deleted_at IS NULL ORDER BY created_at, id"
        )
    ]
    columns = ", ".join(f"a.{name}" for name in ADDRESS_FIELDS)
    addresses = [
        CustomerAddress(**r)
        for r in rows(
            f"SELECT a.id, a.customer_id, {columns}, a.created_at, a.updated_at"
            " FROM {s}.customer_address a JOIN {s}.customer c ON c.id = a.customer_id"
            " WHERE a.deleted_at IS NULL AND c.deleted_at IS NULL ORDER BY a.created_at, a.id"
        )
    ]
    memberships = rows(
        "SELECT id, customer_group_id, customer_id, created_by, created_at, deleted_at"
        " FROM {s}.customer_group_customer ORDER BY created_at, id"
    )
    return MedusaState(groups, customers, addresses, memberships)


def import_state(uow: UnitOfWork, state: MedusaState, *, emit: bool) -> None:
    """Write ``state`` as Groupwire's copy (and the membership map of the live rows); with
    ``emit``, record it as events too: groups and customers created, addresses created,
    members added."""
    conn, now = uow.connection, uow.now
    if state.groups:
        conn.execute(insert(tables.customer_group), [asdict(g) for g in state.groups])
    if state.customers:
        conn.execute(insert(tables.customer), [asdict(c) for c in state.customers])
    if state.addresses:
        conn.execute(insert(customer_address), [asdict(a) for a in state.addresses])
    live_groups = {g.id for g in state.groups}
    live_customers = {c.id for c in state.customers}
    members: dict[str, list[str]] = {}
    member_rows = []
    for row in state.memberships:
        group_id, customer_id = row["customer_group_id"], row["customer_id"]
        if row["deleted_at"] is None and group_id in live_groups and customer_id in live_customers:
            if customer_id in members.setdefault(group_id, []):
                continue
            members[group_id].append(customer_id)
            member_rows.append(
                {
                    "customer_group_id": group_id,
                    "customer_id": customer_id,
                    "created_by": row["created_by"],
                    "created_at": row["created_at"],
                }
            )
    if member_rows:
        conn.execute(insert(tables.membership), member_rows)
    conn.execute(delete(medusa_membership))
    bulk.insert_rows(
        conn,
        medusa_membership,
        ("id", "customer_group_id", "customer_id"),
        [
            (r["id"], r["customer_group_id"], r["customer_id"])
            for r in state.memberships
            if r["deleted_at"] is None
        ],
    )
    if not emit:
        return
    for group in state.groups:
        uow.emit(ev.group_created(group))
    for customer in state.customers:
        uow.emit(ev.customer_created(customer))
    for address in state.addresses:
        uow.emit(ev.address_created(address))
    for group_id, customer_ids in members.items():
        uow.emit(ev.customers_added(group_id, customer_ids, now))


__all__ = [
    "CaptureError",
    "CaptureOptions",
    "CaptureStatus",
    "MedusaCapture",
    "MedusaState",
    "SlotInvalidated",
    "capture_status",
    "holds_copy",
    "import_state",
    "read_state",
]
