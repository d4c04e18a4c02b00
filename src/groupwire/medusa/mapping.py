"""Medusa row changes -> Groupwire's copy and events, one Medusa transaction at a time.

Medusa writes rows; Groupwire tells what they mean, with the event types and payloads of its
own service (built by :mod:`groupwire.domain.events`), in the order its own service would emit
them. What a row change alone does not say comes from Groupwire's copy:

- an UPDATE carries the new row only: the old values (``updated`` with ``old``/``new`` per
  field, ``metadata_updated`` with the key diff) are the copy's;
- deleting a group is an UPDATE setting ``deleted_at`` on ``customer_group``; Medusa leaves the
  membership rows as they are. Each live member in the copy leaves it first
  (``customer_removed``, reason ``group_deleted``), then ``customer_group.deleted``;
- deleting a customer likewise: it leaves each group (reason ``customer_deleted``), its live
  addresses are deleted with it (``address_deleted``, reason ``customer_deleted``), then
  ``customer.deleted``. Medusa's own soft delete of those addresses, in the same transaction,
  adds nothing;
- a batch removal is a hard DELETE whose record carries only the membership row's ``id``:
  the adapter's map (``medusa_membership``, Medusa's live membership rows) says which
  customer left which group, read once for all the DELETEs of a run (a batch removal is
  10,000 of them), not once per row;
- Medusa has no unique constraint on (group, customer): adding a member again writes a
  second row (its API reads show the customer once, its removal deletes every row). The copy
  holds the distinct live pairs: a second row tells nothing, and a customer leaves a group
  only when the last live row of the pair goes (hard DELETE or ``deleted_at`` set). What the
  map holds after a run's rows decides which pairs leave.

Consecutive membership rows of one kind (a batch add of 10,000 customers is 10,000 INSERTs)
are gathered per group and recorded as one run of events per group, as Groupwire's own batch
is. Consecutive customer and address rows are applied together (:class:`CustomerRows`): the
copy's rows read at once, each row told in order as if alone, the copy written back in a few
statements. A membership whose group or customer is not live in the copy is remembered in the
map but tells nothing (Medusa's API refuses those; plain SQL might write them).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from functools import lru_cache
from operator import attrgetter, itemgetter
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import (
    ARRAY,
    JSON,
    Select,
    String,
    Table,
    any_,
    bindparam,
    delete,
    func,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from groupwire.domain import events as ev
from groupwire.domain.addresses import ADDRESS_FIELDS, CustomerAddress
from groupwire.domain.changes import Context
from groupwire.domain.models import Customer, CustomerGroup
from groupwire.medusa.orders import ORDER_TABLE, SUMMARY_TABLE, OrderChanges
from groupwire.medusa.pgoutput import UNCHANGED, Value
from groupwire.medusa.rows import Row, RowLayout
from groupwire.medusa.tables import medusa_membership, medusa_rule_intent
from groupwire.service import AfterHook
from groupwire.store import bulk, tables
from groupwire.store import repository as repo
from groupwire.store.address_tables import customer_address
from groupwire.store.unit_of_work import UnitOfWork

log = logging.getLogger("groupwire.medusa")
T = TypeVar("T")

Operation = Literal["insert", "update", "delete"]
GROUP_TABLE = "customer_group"
MEMBERSHIP_TABLE = "customer_group_customer"
CUSTOMER_TABLE = "customer"
ADDRESS_TABLE = "customer_address"
_INSERTED = ("id", "customer_group_id", "customer_id", "created_by", "deleted_at")


class RowChange:
    """One row change of a Medusa transaction: the new row (insert, update) or the old key
    or row (delete).

    A batch makes 10,000 of them, so each is one small object holding the values as sent;
    the :class:`Row` mapping is made when first asked for (the membership fast path reads
    the values without it). Fewer objects per change also means fewer for Python's cyclic
    garbage collector to walk through while a large transaction is held in memory."""

    __slots__ = ("_row", "layout", "operation", "table", "values")

    def __init__(
        self, table: str, operation: Operation, layout: RowLayout, values: tuple[Value, ...]
    ) -> None:
        self.table = table
        self.operation = operation
        self.layout = layout
        self.values = values
        self._row: Row | None = None

    @property
    def row(self) -> Row:
        row = self._row
        if row is None:
            row = self._row = Row(self.layout, self.values)
        return row

    def __repr__(self) -> str:
        return f"RowChange({self.table!r}, {self.operation!r}, {self.row!r})"


@dataclass(frozen=True, slots=True)
class MedusaTransaction:
    """One committed Medusa transaction, its row changes in the order Medusa made them."""

    xid: int
    end_lsn: int  # where its commit record ends: the stream position once it is applied
    committed_at: datetime
    changes: list[RowChange]
    read_at: float = 0.0  # time.perf_counter() when its Begin was read (0: not read live)

    def actor(self) -> str | None:
        """Who made it, as far as Medusa records it: the first ``created_by`` among the rows
        it inserted (an updated row's ``created_by`` names its creator, not the updater, and
        Medusa keeps no ``updated_by`` or ``deleted_by``)."""
        for change in self.changes:
            if change.operation == "insert":
                by = change.row.get("created_by")
                if isinstance(by, str) and by:
                    return by
        return None

    def context(self) -> Context:
        return Context(actor=self.actor(), correlation_id=f"medusa:{self.xid}")


def apply_transaction(uow: UnitOfWork, transaction: MedusaTransaction) -> list[AfterHook]:
    """Write the copy and emit the events of ``transaction`` in ``uow``; returns the
    after-hooks to run once it is committed."""
    applier = TransactionApplier(uow)
    applier.apply(transaction.changes, complete=True)
    return applier.finish(transaction.context())


class TransactionApplier:
    """Applies one Medusa transaction to Groupwire's copy in ``uow``, possibly in pieces
    while the rest of it is still coming (:meth:`apply` with ``complete=False``).

    Applied in pieces or at once, the copy and the events come out the same: membership rows
    are written a piece at a time, but their events are recorded when their run ends (a
    change of kind or of table, or the end), as one run per group, as if written at once;
    the after-hooks are made at :meth:`finish`, when who made the transaction is known.
    """

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.conn: Connection = uow.connection
        self.hooks: list[tuple[str, dict[str, Any]]] = []
        # membership rows waiting to be written: one kind at a time, per group, in order
        self.pending_kind: str | None = None
        self.pending: dict[str, list[str]] = {}
        self.pending_by: str | None = None
        # ... and those of the current run already written: their events wait for its end
        self.run: dict[str, tuple[CustomerGroup | None, list[str]]] = {}
        self.map_added: dict[str, tuple[str, str]] = {}
        self.map_removed: list[str] = []
        # deleted membership rows of the current run, in order, with their pair when known
        # without the map (the DELETE of a row carries its id only)
        self.removals: list[tuple[str, tuple[str, str] | None]] = []
        # customers this transaction deletes: their addresses go with them (see module doc)
        self.customers_deleted: set[str] = set()
        self.orders = OrderChanges(uow)  # order facts, recorded at finish
        self.customer_rows = CustomerRows(self)

    def apply(self, changes: Sequence[RowChange], *, complete: bool) -> int:
        """Apply ``changes`` in order, the next ones of the transaction; returns how many
        were applied. ``complete``: they are all the transaction has left. Otherwise the
        changes stop before the first address change (whether its customer is deleted later
        in the transaction decides what it means): give it again, with what follows it."""
        count = len(changes)
        for position, change in enumerate(changes):
            table = change.table
            if table == CUSTOMER_TABLE:
                row = change.row
                if change.operation == "delete" or _is_set(row.raw("deleted_at")):
                    self.customers_deleted.add(str(row["id"]))
            elif table == ADDRESS_TABLE and not complete:
                count = position
                break
        membership = self.membership
        people: list[RowChange] = []  # consecutive customer and address rows, applied at once
        for change in changes[:count] if count < len(changes) else changes:
            table = change.table
            if table in (CUSTOMER_TABLE, ADDRESS_TABLE):
                if not people:
                    self.end_run()
                people.append(change)
                continue
            if people:
                self.customer_rows.apply(people)
                people = []
            if table == MEMBERSHIP_TABLE:
                membership(change)
                continue
            self.end_run()
            if table == GROUP_TABLE:
                self.group(change)
            elif table in (ORDER_TABLE, SUMMARY_TABLE):
                self.orders.change(change)
        if people:
            self.customer_rows.apply(people)
        return count

    def finish(self, context: Context) -> list[AfterHook]:
        """Record what is still pending; returns the after-hooks, each told ``context``
        (the transaction's, see :meth:`MedusaTransaction.context`)."""
        self.end_run()
        self.orders.finish()
        return [
            AfterHook(name, {**arguments, "context": context}) for name, arguments in self.hooks
        ]

    def hook(self, name: str, **arguments: Any) -> None:
        self.hooks.append((name, arguments))

    # --- customer groups --------------------------------------------------------------------

    def group(self, change: RowChange) -> None:
        row = change.row
        current = _any_group(self.conn, str(row["id"]))
        live = current if current is not None and current.deleted_at is None else None
        if change.operation == "delete" or _is_set(row.get("deleted_at")):
            if live is not None:
                self.delete_group(live, row)
            return
        if live is None:
            self.create_group(row, current)
            return
        changes = _changes(live, row, ev.GROUP_FIELDS, _group_values)
        if not changes:
            return
        values: dict[str, Any] = {name: change["new"] for name, change in changes.items()}
        values.update(updated_at=_time(row, "updated_at", self.uow.now), version=live.version + 1)
        repo.update_row(self.conn, tables.customer_group, live.id, values)
        self.uow.emit(ev.group_updated(live.id, changes))
        if "metadata" in changes:
            diff = ev.metadata_diff(live.metadata, values["metadata"])
            if diff:
                self.uow.emit(ev.group_metadata_updated(live.id, diff))
        self.hook("after_update_customer_group", group=replace(live, **values), changes=changes)

    def create_group(self, row: Row, previous: CustomerGroup | None) -> None:
        group = CustomerGroup(
            id=str(row["id"]),
            name=row.get("name") or "",
            description=None,
            metadata=_known(row.get("metadata")),
            created_by=row.get("created_by"),
            created_at=_time(row, "created_at", self.uow.now),
            updated_at=_time(row, "updated_at", self.uow.now),
        )
        if previous is None:
            repo.insert_group(self.conn, asdict(group))
        else:  # a deleted group restored
            group = replace(group, version=previous.version + 1)
            repo.update_row(self.conn, tables.customer_group, group.id, asdict(group))
        self.uow.emit(ev.group_created(group))
        self.hook("after_create_customer_group", group=group)

    def delete_group(self, group: CustomerGroup, row: Row) -> None:
        members = repo.member_ids(self.conn, group.id)
        deleted = repo.delete_memberships(self.conn, group.id, members)
        removed = [cid for cid in members if cid in deleted]
        self.uow.emit(
            ev.customers_removed(group.id, removed, self.uow.now, ev.REASON_GROUP_DELETED)
        )
        at = _time(row, "deleted_at", self.uow.now)
        values: dict[str, Any] = {"deleted_at": at, "updated_at": at, "version": group.version + 1}
        repo.update_row(self.conn, tables.customer_group, group.id, values)
        self.uow.emit(ev.group_deleted(group, len(removed)))
        gone = replace(group, **values)
        if removed:
            self.hook(
                "after_remove_customer_from_group",
                group=gone,
                customer_ids=removed,
                reason=ev.REASON_GROUP_DELETED,
            )
        self.hook("after_delete_customer_group", group=gone, removed_customer_ids=removed)

    # --- memberships ------------------------------------------------------------------------

    def membership(self, change: RowChange) -> None:
        if change.operation == "insert":  # the common case: pick the raw values at once
            pick = change.layout.picker(_INSERTED)
            if pick is not None:
                row_id, group_id, customer_id, by, deleted_at = pick(change.values)
                if deleted_at is None:  # the text columns are as sent: nothing to type
                    self.map_added[row_id] = (group_id, customer_id)
                    self.queue("add", group_id, customer_id, by)
                    return
        row = change.row
        raw = row.raw
        row_id = str(raw("id"))
        live = change.operation != "delete" and not _is_set(raw("deleted_at"))
        if change.operation == "insert":
            if live:
                group_id, customer_id = str(raw("customer_group_id")), str(raw("customer_id"))
                self.map_added[row_id] = (group_id, customer_id)
                self.queue("add", group_id, customer_id, raw("created_by"))
            return  # a row inserted soft-deleted: no live row, nothing to tell
        if change.operation == "delete":
            # Resolved through the map when written, all the run's at once (see write)
            if self.pending_kind != "remove":
                self.end_run()
                self.pending_kind = "remove"
            pair = _carried(row) or self.map_added.get(row_id)
            self.map_added.pop(row_id, None)
            self.map_removed.append(row_id)
            self.removals.append((row_id, pair))
            return
        pair = self.resolve(row_id, row)
        if pair is None:
            # a row the map does not hold: deleted while soft-deleted (never live for us),
            # or written before capture by plain SQL with no group or customer
            log.debug("membership row %s: no group and customer known for it", row_id)
            return
        # The map holds the live rows only; written again whole (the delete goes first)
        self.map_added.pop(row_id, None)
        self.map_removed.append(row_id)
        if live:  # un-deleted, or its metadata changed: a member, if not one already
            self.map_added[row_id] = pair
            self.queue("add", *pair, row.get("created_by"))
        else:  # deleted, hard or soft: the pair leaves only with its last live row
            self.queue("remove", *pair, None)

    def resolve(self, row_id: str, row: Row) -> tuple[str, str] | None:
        """(group, customer) of a membership row: the row itself when it says (an INSERT, an
        UPDATE, a DELETE under REPLICA IDENTITY FULL), else the map."""
        carried = _carried(row)
        if carried is not None:
            return carried
        if row_id in self.map_added:
            return self.map_added[row_id]
        found = self.conn.execute(
            select(medusa_membership.c.customer_group_id, medusa_membership.c.customer_id).where(
                medusa_membership.c.id == row_id
            )
        ).first()
        return (str(found[0]), str(found[1])) if found else None

    def resolve_removals(self) -> None:
        """Queue the deleted rows' pairs, those the rows did not carry read from the map in
        one query per chunk (not one per row: a batch removal deletes 10,000 rows)."""
        removals, self.removals = self.removals, []
        unknown = [row_id for row_id, pair in removals if pair is None]
        found = _mapped_pairs(self.conn, unknown) if unknown else {}
        pending = self.pending
        for row_id, known in removals:
            pair = known or found.get(row_id)
            if pair is None:
                # a row the map does not hold: deleted while soft-deleted (never live for
                # us), or written before capture by plain SQL with no group or customer
                log.debug("membership row %s: no group and customer known for it", row_id)
                continue
            pending.setdefault(pair[0], []).append(pair[1])

    def queue(self, kind: str, group_id: str, customer_id: str, by: Any) -> None:
        if self.pending_kind != kind:
            self.end_run()
            self.pending_kind = kind
        if self.pending_by is None and isinstance(by, str):
            self.pending_by = by
        pending = self.pending.get(group_id)
        if pending is None:
            self.pending[group_id] = [customer_id]
        else:
            pending.append(customer_id)

    def write(self) -> None:
        """Write the membership rows gathered so far (and the map); their events wait for
        the end of their run."""
        if self.removals:
            self.resolve_removals()
        kind, pending = self.pending_kind, self.pending
        self.pending = {}
        # The map first: a pair leaves only when no live row of it is left in the map
        self.save_map()
        for group_id, customer_ids in pending.items():
            known = self.run.get(group_id)
            if known is None:
                known = self.run[group_id] = (repo.get_group(self.conn, group_id), [])
            group, done = known
            if group is None:
                continue
            ids = list(dict.fromkeys(customer_ids))
            if kind == "add":
                # One INSERT ... SELECT: live customers only, members already skipped (ids
                # only: capture is the only writer), in the order Medusa inserted them.
                written = repo.add_live_memberships(
                    self.conn, group.id, ids, self.uow.now, self.pending_by
                )
            else:
                written = delete_unheld_memberships(self.conn, group.id, ids)
            done.extend(cid for cid in ids if cid in written)

    def end_run(self) -> None:
        """Write what is pending and record the run's events: one run of events per group."""
        self.write()
        kind, run = self.pending_kind, self.run
        self.pending_kind, self.pending_by, self.run = None, None, {}
        for group, customer_ids in run.values():
            if group is None or not customer_ids:
                continue
            ruled = consume_intents(self.conn, group.id, kind or "", customer_ids)
            if ruled:  # what the reconciler asked Medusa for: reason "rule"
                customer_ids = [c for c in customer_ids if c not in ruled]
                self.rule_runs(kind or "", group, ruled)
                if not customer_ids:
                    continue
            if kind == "add":
                self.uow.emit(ev.customers_added(group.id, customer_ids, self.uow.now))
                self.hook("after_add_customer_to_group", group=group, customer_ids=customer_ids)
                continue
            self.uow.emit(
                ev.customers_removed(group.id, customer_ids, self.uow.now, ev.REASON_REMOVED)
            )
            self.hook(
                "after_remove_customer_from_group",
                group=group,
                customer_ids=customer_ids,
                reason=ev.REASON_REMOVED,
            )

    def rule_runs(self, kind: str, group: CustomerGroup, ruled: dict[str, tuple[int, str]]) -> None:
        """The events of the members a smart group's reconciler asked Medusa for, one run
        per (rule version, trigger), in the order Medusa wrote them."""
        runs: dict[tuple[int, str], list[str]] = {}
        for customer_id, key in ruled.items():
            runs.setdefault(key, []).append(customer_id)
        now = self.uow.now
        for (version, trigger), ids in runs.items():
            if kind == "add":
                self.uow.emit(ev.rule_customers_added(group.id, ids, now, version, trigger))
                self.hook("after_add_customer_to_group", group=group, customer_ids=ids)
            else:
                self.uow.emit(ev.rule_customers_removed(group.id, ids, now, version, trigger))
                self.hook(
                    "after_remove_customer_from_group",
                    group=group,
                    customer_ids=ids,
                    reason=ev.REASON_RULE,
                )

    def save_map(self) -> None:
        if not self.map_added and not self.map_removed:
            return
        M = medusa_membership
        for part in repo.chunks(self.map_removed):
            self.conn.execute(delete(M).where(M.c.id.in_(list(part))))
        rows = [(row_id, g, c) for row_id, (g, c) in self.map_added.items()]
        bulk.insert_rows(self.conn, M, ("id", "customer_group_id", "customer_id"), rows)
        self.map_added, self.map_removed = {}, []


# --- customers and addresses ------------------------------------------------------------------


class CustomerRows:
    """Applies consecutive customer and address row changes of a transaction at once.

    A batch of 10,000 customers inserted (or updated, or 10,000 addresses) in one Medusa
    transaction is read from the copy in one query per table, told in order from that state
    held in memory (the events, payloads and after-hooks of a row at a time: each row sees
    the ones before it), and written back in one statement per run of inserts or of updates
    and table. An update writes the row's whole state; updates are written in Medusa's order
    (a default address handed from one row to another never has two at once); an insert run
    takes the later changes of its rows as their final state (they are all new rows).
    Customers are written before addresses (the foreign key), memberships of deleted
    customers go per group.
    """

    def __init__(self, applier: TransactionApplier) -> None:
        self.applier = applier
        self.uow = applier.uow
        self.conn = applier.conn
        self.customers: dict[str, Customer] = {}  # any state: as in the copy, then as told
        self.addresses: dict[str, CustomerAddress] = {}
        # of the customers the changes may delete: their addresses (ids, in the copy's order)
        # and the live groups they are members of, by id
        self.addresses_of: dict[str, list[str]] = {}
        self.groups_of: dict[str, list[str]] = {}
        self.groups: dict[str, CustomerGroup] = {}
        self.customer_writes = TableWrites(tables.customer)
        self.address_writes = TableWrites(customer_address)
        self.removals: dict[str, list[str]] = {}  # group -> customers leaving it (deleted)

    def apply(self, changes: Sequence[RowChange]) -> None:
        self.load(changes)
        for change in changes:
            if change.table == CUSTOMER_TABLE:
                self.customer(change)
            else:
                self.address(change)
        self.write()

    def load(self, changes: Sequence[RowChange]) -> None:
        """Read the rows ``changes`` are about (and, for the customers they may delete,
        their addresses and groups) from the copy, which holds everything before them."""
        conn, reads = self.conn, _reads(self.conn.dialect.name)
        customer_ids: dict[str, None] = {}
        address_ids: dict[str, None] = {}
        deleting: dict[str, None] = {}
        for change in changes:
            row = change.row
            row_id = str(row["id"])
            if change.table == CUSTOMER_TABLE:
                customer_ids[row_id] = None
                if change.operation == "delete" or _is_set(row.raw("deleted_at")):
                    deleting[row_id] = None
            else:
                address_ids[row_id] = None
                owner = row.get("customer_id")
                if isinstance(owner, str):
                    customer_ids[owner] = None
        self.customers, self.addresses = {}, {}
        self.addresses_of, self.groups_of, self.groups = {}, {}, {}
        for params in _id_params(conn, list(address_ids)):
            for address in _entities(CustomerAddress, conn.execute(reads.addresses, params)):
                self.addresses[address.id] = address
                customer_ids[address.customer_id] = None
        for params in _id_params(conn, list(customer_ids)):
            for customer in _entities(Customer, conn.execute(reads.customers, params)):
                self.customers[customer.id] = customer
        if not deleting:
            return
        for cid in deleting:
            self.addresses_of[cid], self.groups_of[cid] = [], []
        for params in _id_params(conn, list(deleting)):
            for address in _entities(
                CustomerAddress, conn.execute(reads.live_addresses_of, params)
            ):
                self.addresses.setdefault(address.id, address)
                self.addresses_of[address.customer_id].append(address.id)
            for cid, gid in conn.execute(reads.memberships_of, params):
                self.groups_of[cid].append(gid)
        group_ids = sorted({gid for gids in self.groups_of.values() for gid in gids})
        if group_ids:
            self.groups = repo.lock_groups(conn, group_ids)

    def write(self) -> None:
        self.customer_writes.write(self.conn)
        for group_id, customer_ids in self.removals.items():
            repo.delete_memberships(self.conn, group_id, customer_ids)
        self.removals = {}
        self.address_writes.write(self.conn)

    def hook(self, name: str, **arguments: Any) -> None:
        self.applier.hooks.append((name, arguments))

    def live_customer(self, customer_id: str) -> Customer | None:
        customer = self.customers.get(customer_id)
        return customer if customer is not None and customer.deleted_at is None else None

    def put_customer(self, customer: Customer, *, new: bool, changed: Iterable[str]) -> None:
        self.customers[customer.id] = customer
        self.customer_writes.put(customer, new=new, changed=changed)

    def put_address(self, address: CustomerAddress, *, new: bool, changed: Iterable[str]) -> None:
        self.addresses[address.id] = address
        self.address_writes.put(address, new=new, changed=changed)
        owned = self.addresses_of.get(address.customer_id)
        if owned is not None and address.id not in owned:
            owned.append(address.id)

    # --- customers --------------------------------------------------------------------------

    def customer(self, change: RowChange) -> None:
        row = change.row
        current = self.customers.get(str(row["id"]))
        live = current if current is not None and current.deleted_at is None else None
        if change.operation == "delete" or _is_set(row.get("deleted_at")):
            if live is not None:
                self.delete_customer(live, row)
            return
        if live is None:
            self.create_customer(row, current)
            return
        changes = _changes(live, row, ev.CUSTOMER_FIELDS, _known_values)
        values: dict[str, Any] = {name: change["new"] for name, change in changes.items()}
        if row.get("has_account") is not None and row["has_account"] != live.has_account:
            values["has_account"] = row["has_account"]  # no event: not a field Groupwire tells
        if not values:
            return
        values.update(updated_at=_time(row, "updated_at", self.uow.now), version=live.version + 1)
        updated = replace(live, **values)
        self.put_customer(updated, new=False, changed=values)
        if changes:
            self.uow.emit(ev.customer_updated(live.id, changes))
            self.hook("after_update_customer", customer=updated, changes=changes)

    def create_customer(self, row: Row, previous: Customer | None) -> None:
        customer = Customer(
            id=str(row["id"]),
            **{name: _known(row.get(name)) for name in ev.CUSTOMER_FIELDS},
            has_account=bool(row.get("has_account")),
            created_by=row.get("created_by"),
            created_at=_time(row, "created_at", self.uow.now),
            updated_at=_time(row, "updated_at", self.uow.now),
        )
        if previous is not None:  # a deleted customer restored
            customer = replace(customer, version=previous.version + 1)
        self.put_customer(customer, new=previous is None, changed=_CUSTOMER_COLUMNS)
        self.uow.emit(ev.customer_created(customer))
        self.hook("after_create_customer", customer=customer)

    def delete_customer(self, customer: Customer, row: Row) -> None:
        now = self.uow.now
        left: list[CustomerGroup] = []
        for group_id in self.groups_of.pop(customer.id, []):
            group = self.groups.get(group_id)
            if group is None:
                continue
            self.removals.setdefault(group_id, []).append(customer.id)
            self.uow.emit(
                ev.customers_removed(group_id, [customer.id], now, ev.REASON_CUSTOMER_DELETED)
            )
            left.append(group)
        at = _time(row, "deleted_at", now)
        owned = [self.addresses[aid] for aid in self.addresses_of.get(customer.id, [])]
        gone_addresses = []
        for address in sorted(owned, key=_created):  # stable: the copy's order for ties
            if address.deleted_at is not None:
                continue
            gone_address = replace(address, deleted_at=at, updated_at=at)
            self.put_address(gone_address, new=False, changed=_GONE)
            self.uow.emit(ev.address_deleted(address, ev.REASON_CUSTOMER_DELETED))
            gone_addresses.append(gone_address)
        gone = replace(customer, deleted_at=at, updated_at=at, version=customer.version + 1)
        self.put_customer(gone, new=False, changed=(*_GONE, "version"))
        self.uow.emit(ev.customer_deleted(customer, len(left)))
        for group in left:
            self.hook(
                "after_remove_customer_from_group",
                group=group,
                customer_ids=[customer.id],
                reason=ev.REASON_CUSTOMER_DELETED,
            )
        for address in gone_addresses:
            self.hook(
                "after_delete_customer_address",
                customer=gone,
                address=address,
                reason=ev.REASON_CUSTOMER_DELETED,
            )
        self.hook("after_delete_customer", customer=gone, removed_group_ids=[g.id for g in left])

    # --- addresses --------------------------------------------------------------------------

    def address(self, change: RowChange) -> None:
        row = change.row
        current = self.addresses.get(str(row["id"]))
        live = current if current is not None and current.deleted_at is None else None
        customer_id = str(row.get("customer_id") or (current.customer_id if current else ""))
        customer = self.live_customer(customer_id) if customer_id else None
        if customer is None:
            return  # an address of a customer the copy does not have (or just deleted)
        if change.operation == "delete" or _is_set(row.get("deleted_at")):
            if live is None or customer_id in self.applier.customers_deleted:
                return  # the customer's deletion takes it along (see module doc)
            at = _time(row, "deleted_at", self.uow.now)
            gone = replace(live, deleted_at=at, updated_at=at)
            self.put_address(gone, new=False, changed=_GONE)
            self.uow.emit(ev.address_deleted(live, ev.REASON_ADDRESS_DELETED))
            self.hook(
                "after_delete_customer_address",
                customer=customer,
                address=gone,
                reason=ev.REASON_ADDRESS_DELETED,
            )
            return
        if live is None:
            address = CustomerAddress(
                id=str(row["id"]),
                customer_id=customer.id,
                **{name: _known(row.get(name)) for name in ADDRESS_FIELDS},
                created_at=_time(row, "created_at", self.uow.now),
                updated_at=_time(row, "updated_at", self.uow.now),
            )
            self.put_address(address, new=current is None, changed=_ADDRESS_COLUMNS)
            self.uow.emit(ev.address_created(address))
            self.hook("after_create_customer_address", customer=customer, address=address)
            return
        changes = _changes(live, row, ADDRESS_FIELDS, _known_values)
        if not changes:
            return
        values: dict[str, Any] = {name: change["new"] for name, change in changes.items()}
        values["updated_at"] = _time(row, "updated_at", self.uow.now)
        updated = replace(live, **values)
        self.put_address(updated, new=False, changed=values)
        self.uow.emit(ev.address_updated(live, changes))
        self.hook(
            "after_update_customer_address", customer=customer, address=updated, changes=changes
        )


class TableWrites:
    """The rows of one table to write, in order, as runs: of new rows (one ``executemany``
    of ``INSERT``, a ``COPY`` on PostgreSQL) or of updates (one ``executemany`` setting the
    columns any row of the run changes, from each row's whole state), with the driver's own
    statements, the values converted as the column types would (as
    :mod:`groupwire.store.bulk` does)."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.columns = tuple(column.name for column in table.c)
        self.state = attrgetter(*self.columns)  # an entity's values, in the columns' order
        # (new rows?, the rows' entities, their positions by id, the columns an update sets)
        self.runs: list[tuple[bool, list[Any], dict[str, int], set[str]]] = []

    def put(
        self, entity: Customer | CustomerAddress, *, new: bool, changed: Iterable[str] = ()
    ) -> None:
        """Write ``entity`` (its whole state): a new row, or an update of ``changed``
        (column names: the others hold what the copy has)."""
        row_id = entity.id
        last = self.runs[-1] if self.runs else None
        if last is not None and last[0] and row_id in last[2]:
            last[1][last[2][row_id]] = entity  # a row of the last insert run: its final state
            return
        if last is None or last[0] != new:
            last = (new, [], {}, set())
            self.runs.append(last)
        if new:
            last[2][row_id] = len(last[1])
        else:
            last[3].update(changed)
        last[1].append(entity)

    def write(self, conn: Connection) -> None:
        runs, self.runs = self.runs, []
        if not runs:
            return
        table, state, dialect = self.table, self.state, conn.dialect.name
        convert = _converter(table, dialect)
        for new, entities, _, changed in runs:
            rows = [convert(state(entity)) for entity in entities]
            if new:
                bulk.insert_rows(conn, table, self.columns, rows)
                continue
            columns = tuple(name for name in self.columns if name in changed and name != "id")
            if not columns:
                continue
            pick = itemgetter(*(self.columns.index(name) for name in (*columns, "id")))
            statement = _update_statement(table, columns, dialect == "postgresql")
            conn.exec_driver_sql(statement, [pick(row) for row in rows])


@lru_cache(maxsize=8)
def _converter(table: Table, dialect: str) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """A function turning an entity's values (in ``table``'s column order) into what the
    driver takes, as the column types convert them: JSON as text (None as the JSON
    ``null``), timestamps in UTC (as text on SQLite)."""
    sqlite = dialect == "sqlite"

    def timestamp(value: datetime | None) -> Any:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None).strftime(bulk.SQLITE_DATETIME) if sqlite else value

    steps: list[Callable[[Any], Any] | None] = []
    for column in table.c:
        if isinstance(column.type, tables.UTCDateTime):
            steps.append(timestamp)
        elif isinstance(column.type, JSON):
            steps.append(json.dumps)
        else:
            steps.append(None)

    def convert(values: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(
            value if step is None else step(value)
            for step, value in zip(steps, values, strict=True)
        )

    return convert


@lru_cache(maxsize=64)
def _update_statement(table: Table, columns: tuple[str, ...], postgres: bool) -> str:
    """``UPDATE table SET <columns> = ... WHERE id = ...``, for the driver."""
    mark = "%s" if postgres else "?"
    assignments = [
        f'"{name}" = '
        + (f"CAST({mark} AS JSONB)" if postgres and isinstance(table.c[name].type, JSON) else mark)
        for name in columns
    ]
    return f'UPDATE "{table.name}" SET {", ".join(assignments)} WHERE "id" = {mark}'


_CUSTOMER_COLUMNS = tuple(column.name for column in tables.customer.c)
_ADDRESS_COLUMNS = tuple(column.name for column in customer_address.c)
_GONE = ("deleted_at", "updated_at")  # what a soft delete sets


def _entities(entity: Callable[..., T], result: Any) -> list[T]:
    """The entities of the rows of ``select(table)``, whose columns are the entity's fields
    in order (as :class:`Customer` and :class:`CustomerAddress` are the tables' columns)."""
    names = tuple(f.name for f in fields(cast(Any, entity)))
    if tuple(result.keys()) != names:
        raise RuntimeError(f"the columns of {result.keys()} are not the fields {names}")
    return [entity(*row) for row in result]


def _created(address: CustomerAddress) -> datetime:
    return address.created_at or datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _Reads:
    customers: Select[Any]
    addresses: Select[Any]
    live_addresses_of: Select[Any]
    memberships_of: Select[Any]


@lru_cache(maxsize=4)
def _reads(dialect: str) -> _Reads:
    """The copy's rows of many ids at once: the ids bound as one array (PostgreSQL) or one
    JSON list read by ``json_each`` (SQLite), as the repository binds them."""

    def among(column: Any) -> ColumnElement[bool]:
        if dialect == "postgresql":
            return column == any_(bindparam("ids", type_=ARRAY(String)))
        listed = func.json_each(bindparam("ids", type_=String)).table_valued("value")
        return column.in_(select(listed.c.value))

    C, A = tables.customer, customer_address
    G, M = tables.customer_group, tables.membership
    return _Reads(
        customers=select(C).where(among(C.c.id)),
        addresses=select(A).where(among(A.c.id)),
        live_addresses_of=select(A)
        .where(among(A.c.customer_id), A.c.deleted_at.is_(None))
        .order_by(A.c.customer_id, A.c.created_at, A.c.id),
        memberships_of=select(M.c.customer_id, M.c.customer_group_id)
        .join(G, G.c.id == M.c.customer_group_id)
        .where(among(M.c.customer_id), G.c.deleted_at.is_(None))
        .order_by(M.c.customer_id, M.c.customer_group_id),
    )


def _id_params(conn: Connection, ids: list[str]) -> Iterator[dict[str, Any]]:
    postgres = conn.dialect.name == "postgresql"
    for part in repo.chunks(ids, 50_000):
        yield {"ids": list(part) if postgres else json.dumps(list(part))}


# --- memberships held by several Medusa rows ----------------------------------------------


def consume_intents(
    conn: Connection, group_id: str, kind: str, customer_ids: Sequence[str]
) -> dict[str, tuple[int, str]]:
    """Take the reconciler's intents (``medusa_rule_intent``) matching these members that
    joined (``kind`` "add") or left ("remove") ``group_id``: customer -> (rule version,
    trigger), in the order of ``customer_ids``; the intents are deleted."""
    I = medusa_rule_intent  # noqa: E741
    if kind not in ("add", "remove"):
        return {}
    found: dict[str, tuple[int, int, str]] = {}
    for part in repo.chunks(list(customer_ids)):
        rows = conn.execute(
            select(I.c.id, I.c.customer_id, I.c.rule_version, I.c.trigger).where(
                I.c.customer_group_id == group_id,
                I.c.action == kind,
                I.c.customer_id.in_(list(part)),
            )
        )
        for intent_id, customer_id, version, trigger in rows:
            known = found.get(customer_id)
            if known is None or intent_id > known[0]:  # the latest intent of the pair
                found[customer_id] = (intent_id, version, trigger)
    if not found:
        return {}
    for part in repo.chunks(list(found)):
        conn.execute(
            delete(I).where(
                I.c.customer_group_id == group_id,
                I.c.action == kind,
                I.c.customer_id.in_(list(part)),
            )
        )
    return {c: (found[c][1], found[c][2]) for c in customer_ids if c in found}


def _listed(dialect: str, column: Any) -> Any:
    """``column`` among the ids bound as one parameter, as the repository binds id lists:
    an array on PostgreSQL, a JSON array read by ``json_each`` on SQLite."""
    if dialect == "postgresql":
        return column == any_(bindparam("ids", type_=ARRAY(String)))
    values = func.json_each(bindparam("ids", type_=String)).table_valued("value")
    return column.in_(select(values.c.value))


@lru_cache(maxsize=2)
def _map_lookup(dialect: str) -> Any:
    H = medusa_membership
    return select(H.c.id, H.c.customer_group_id, H.c.customer_id).where(_listed(dialect, H.c.id))


def _mapped_pairs(conn: Connection, row_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Medusa row id -> (group, customer) for those of ``row_ids`` the map holds."""
    statement = _map_lookup(conn.dialect.name)
    found: dict[str, tuple[str, str]] = {}
    for params in repo.id_chunks(conn, row_ids):
        for row_id, group_id, customer_id in conn.execute(statement, params):
            found[row_id] = (group_id, customer_id)
    return found


@lru_cache(maxsize=2)
def _held_lookup(dialect: str) -> Any:
    """The customers among the ids bound (as the repository binds id lists) that still have
    a row in the membership map for the group (the index ``ix_medusa_membership_pair``)."""
    H = medusa_membership
    return select(H.c.customer_id).where(
        H.c.customer_group_id == bindparam("group_id"), _listed(dialect, H.c.customer_id)
    )


def delete_unheld_memberships(
    conn: Connection, group_id: str, customer_ids: Sequence[str]
) -> set[str]:
    """Delete the memberships of ``customer_ids`` in the group that no row of the membership
    map (the live Medusa rows) still holds; returns the customer ids really deleted.

    Medusa keeps no unique constraint on (group, customer): adding a member twice writes a
    second row, and a pair is a member while any row of it is live. Two plain statements
    per chunk, the lookup then the repository's delete: one ``DELETE ... WHERE NOT EXISTS``
    did the same, but PostgreSQL planned its anti-join against the young map (analyzed
    empty at install) as a nested loop over sequential scans: 92 s for 10,000 rows."""
    statement = _held_lookup(conn.dialect.name)
    held: set[str] = set()
    for params in repo.id_chunks(conn, customer_ids):
        held.update(conn.execute(statement, {"group_id": group_id, **params}).scalars())
    unheld = [customer_id for customer_id in customer_ids if customer_id not in held]
    return repo.delete_memberships(conn, group_id, unheld) if unheld else set()


# --- reading the copy, whatever its state ---------------------------------------------------


def _any_group(conn: Connection, group_id: str) -> CustomerGroup | None:
    G = tables.customer_group
    row = conn.execute(select(G).where(G.c.id == group_id)).mappings().first()
    return repo.to_group(row) if row else None


# --- small helpers ----------------------------------------------------------------------------


def _carried(row: Row) -> tuple[str, str] | None:
    """(group, customer) when the row carries both (not a DELETE's key of the id only)."""
    group_id, customer_id = row.get("customer_group_id"), row.get("customer_id")
    if isinstance(group_id, str) and isinstance(customer_id, str):
        return group_id, customer_id
    return None


def _is_set(value: Any) -> bool:
    return value is not None and value is not UNCHANGED


def _known(value: Any) -> Any:
    return None if value is UNCHANGED else value


def _time(row: Row, column: str, default: datetime) -> datetime:
    value = row.get(column)
    return value if isinstance(value, datetime) else default


def _known_values(row: Row, fields: Sequence[str]) -> dict[str, Any]:
    """The new values of ``fields`` the row carries (a TOASTed value left alone is not)."""
    values = {name: row.get(name, UNCHANGED) for name in fields}
    return {name: value for name, value in values.items() if value is not UNCHANGED}


def _group_values(row: Row, fields: Sequence[str]) -> dict[str, Any]:
    values = _known_values(row, fields)
    if "name" in values and values["name"] is None:
        values["name"] = ""
    return values


def _changes(current: Any, row: Row, fields: Sequence[str], values: Any) -> dict[str, Any]:
    """``{field: {"old", "new"}}`` for each field the row changes, as the service emits."""
    new = values(row, fields)
    return {
        name: {"old": getattr(current, name), "new": new[name]}
        for name in fields
        if name in new and new[name] != getattr(current, name)
    }


__all__ = [
    "CustomerRows",
    "MedusaTransaction",
    "RowChange",
    "TableWrites",
    "TransactionApplier",
    "apply_transaction",
]
