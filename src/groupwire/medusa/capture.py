"""The capture loop: Medusa's committed transactions become Groupwire's copy and events.

One round (:meth:`MedusaCapture.poll`):

1. peek at the slot: whole committed transactions after its confirmed position, in commit
   order (``groupwire.medusa.slot``);
2. apply each one not yet applied as ONE Groupwire transaction, through
   :meth:`groupwire.service.Service.apply_external_change`: the copy, the events and the new
   stream position (the end LSN of Medusa's commit, ``medusa_stream``) commit together, and a
   transaction at or below the stored position is skipped;
3. confirm them to the slot (``pg_replication_slot_advance``), which lets PostgreSQL recycle
   that WAL.

A crash between 2 and 3 makes the slot hand the same transactions out again, and step 2 skips
them: nothing is lost, nothing doubled. Two capture processes on one slot are safe too: the
position row is locked and re-read inside each Groupwire transaction.

When Medusa's database is busy with other tables only, no transaction of ours comes out of the
slot and so nothing would ever be confirmed: the WAL would pile up. An idle round therefore
confirms the WAL flush position it read before an earlier idle round, at least
``IDLE_CONFIRM_DELAY`` seconds old, past which every transaction has been decoded and found
to hold nothing of ours.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from sqlalchemy import Engine, delete, insert, select, update

from groupwire.domain import events as ev
from groupwire.domain.addresses import ADDRESS_FIELDS, CustomerAddress
from groupwire.domain.changes import Context
from groupwire.domain.models import Customer, CustomerGroup
from groupwire.medusa import slot as slots
from groupwire.medusa import tables as bookkeeping
from groupwire.medusa.decoding import TransactionDecoder
from groupwire.medusa.mapping import MedusaTransaction, apply_transaction
from groupwire.medusa.tables import medusa_membership, medusa_stream
from groupwire.service import AfterHook, Service
from groupwire.store import bulk, tables
from groupwire.store.address_tables import customer_address
from groupwire.store.unit_of_work import UnitOfWork

log = logging.getLogger("groupwire.medusa")

IDLE_CONFIRM_DELAY = 1.0
Initial = Literal["silent", "events"]


class CaptureError(RuntimeError):
    """The slot and Groupwire's position disagree, or Medusa's database refuses capture."""


@dataclass(frozen=True)
class CaptureOptions:
    """Where Medusa is and how to read it.

    ``initial``: what the first start does with the groups, customers and memberships Medusa
    already has: ``silent`` copies them without events (subscribers hear of changes from then
    on), ``events`` records them as ``created`` / ``customer_added`` events (a welcome email
    for every existing member: choose it knowingly).
    """

    medusa_url: str
    slot: str = "groupwire"
    publication: str = "groupwire_medusa"
    schema: str = "public"
    poll_interval: float = 0.05
    batch_changes: int = 20_000
    initial: Initial = "silent"

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

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        for name in ("position", "confirmed_lsn", "current_lsn"):
            if values[name] is not None:
                values[name] = slots.lsn_to_text(values[name])
        return values


class MedusaCapture:
    """Capture from one Medusa database into one Groupwire store (``service``'s engine)."""

    def __init__(self, service: Service, options: CaptureOptions) -> None:
        self.service = service
        self.engine: Engine = service.engine
        self.options = options
        self.decoder = TransactionDecoder(options.schema)
        self._conn: psycopg.Connection[Any] | None = None
        self._idle_candidates: list[tuple[float, int]] = []
        self.applied = 0  # transactions applied by this process
        self.on_applied: list[Callable[[MedusaTransaction], None]] = []

    # --- installation -------------------------------------------------------------------

    def install(self) -> str:
        """Make sure the publication, the slot and Groupwire's position exist and agree.

        On first start: creates the publication and the slot, copies Medusa's current state
        from the slot's exported snapshot (see ``CaptureOptions.initial``) and stores the
        slot's consistent point as the position, in one Groupwire transaction. Returns
        ``"created"`` or ``"resumed"``.
        """
        bookkeeping.ensure(self.engine)
        conn = self.connection()
        slots.ensure_publication(conn, self.options.publication, self.options.schema)
        state = slots.slot_state(conn, self.options.slot)
        position = self.position()
        if state is not None and position is not None:
            return "resumed"
        if state is not None:
            raise CaptureError(
                f"replication slot {self.options.slot!r} exists but this Groupwire store has no"
                " position for it (another store uses it?): pick another --slot, or drop it"
                " with `groupwire medusa uninstall`"
            )
        if position is not None:
            raise CaptureError(
                f"replication slot {self.options.slot!r} is gone but this store captured from"
                " it: changes made since may be missing. Start over on a fresh store, or"
                " forget the position with `groupwire medusa uninstall --forget`"
            )
        url = self.options.medusa_url
        with slots.create_slot(url, self.options.slot) as new:
            try:
                with slots.snapshot_connection(url, new.snapshot) as snapshot:
                    state_now = read_state(snapshot, self.options.schema)
                self.service.apply_external_change(
                    lambda uow: self._import(uow, state_now, new),
                    context=Context(correlation_id="medusa:snapshot"),
                )
            except BaseException:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (self.options.slot,))
                raise
        return "created"

    def _import(
        self, uow: UnitOfWork, state: MedusaState, new: slots.NewSlot
    ) -> tuple[None, list[AfterHook]]:
        import_state(uow, state, emit=self.options.initial == "events")
        conn = uow.connection
        conn.execute(delete(medusa_stream).where(medusa_stream.c.slot == new.name))
        conn.execute(
            insert(medusa_stream).values(
                slot=new.name, lsn=new.consistent_lsn, applied_at=datetime.now(UTC)
            )
        )
        return None, []

    # --- the loop -----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set; a lost connection is reopened (with a pause)."""
        while not stop.is_set():
            try:
                if self.poll() == 0:
                    stop.wait(self.options.poll_interval)
            except (psycopg.OperationalError, psycopg.InterfaceError) as error:
                log.warning("Medusa's database failed (%s); reconnecting", error)
                self.close()
                stop.wait(1.0)

    def poll(self) -> int:
        """One round: apply what the slot has (at most about ``batch_changes`` messages),
        confirm it; returns the number of Medusa transactions read."""
        conn = self.connection()
        flushed = slots.lsn_to_int(
            conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()[0]  # type: ignore[index]
        )
        rows = slots.peek(
            conn, self.options.slot, self.options.publication, self.options.batch_changes
        )
        transactions = list(self.decoder.transactions(rows))
        position = self.position() or 0
        for transaction in transactions:
            if transaction.end_lsn > position and self._apply(transaction):
                self.applied += 1
                for listener in list(self.on_applied):
                    listener(transaction)
        if transactions:
            slots.advance(conn, self.options.slot, transactions[-1].end_lsn)
            self._idle_candidates.clear()
        else:
            self._confirm_idle(conn, flushed)
        return len(transactions)

    def _apply(self, transaction: MedusaTransaction) -> bool:
        def work(uow: UnitOfWork) -> tuple[bool, list[AfterHook]]:
            conn = uow.connection
            S = medusa_stream
            stored = conn.execute(
                select(S.c.lsn).where(S.c.slot == self.options.slot).with_for_update()
            ).scalar_one()
            if stored >= transaction.end_lsn:
                return False, []  # applied by another process meanwhile
            hooks = apply_transaction(uow, transaction)
            conn.execute(
                update(S)
                .where(S.c.slot == self.options.slot)
                .values(
                    lsn=transaction.end_lsn,
                    xid=transaction.xid,
                    committed_at=transaction.committed_at,
                    applied_at=datetime.now(UTC),
                )
            )
            return True, hooks

        return self.service.apply_external_change(
            work, context=transaction.context(), at=transaction.committed_at
        )

    def _confirm_idle(self, conn: psycopg.Connection[Any], flushed: int) -> None:
        now = time.monotonic()
        self._idle_candidates.append((now, flushed))
        ripe = [lsn for at, lsn in self._idle_candidates if now - at >= IDLE_CONFIRM_DELAY]
        if not ripe:
            return
        self._idle_candidates = [(at, lsn) for at, lsn in self._idle_candidates if lsn > ripe[-1]]
        state = slots.slot_state(conn, self.options.slot)
        if state is not None and (state.confirmed_flush_lsn or 0) < ripe[-1]:
            slots.advance(conn, self.options.slot, ripe[-1])

    # --- state ----------------------------------------------------------------------------

    def position(self) -> int | None:
        S = medusa_stream
        with self.engine.connect() as conn:
            value = conn.execute(select(S.c.lsn).where(S.c.slot == self.options.slot)).scalar()
        return None if value is None else int(value)

    def status(self) -> CaptureStatus:
        return capture_status(self.engine, self.connection(), self.options.slot)

    def connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = slots.connect(self.options.medusa_url)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def capture_status(engine: Engine, conn: psycopg.Connection[Any], slot: str) -> CaptureStatus:
    """The slot as PostgreSQL sees it and the position as Groupwire stored it."""
    bookkeeping.ensure(engine)
    S = medusa_stream
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
    """Write ``state`` as Groupwire's copy (and the membership map); with ``emit``, record
    it as events too: groups and customers created, addresses created, members added."""
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
        [(r["id"], r["customer_group_id"], r["customer_id"]) for r in state.memberships],
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
    "capture_status",
    "import_state",
    "read_state",
]
