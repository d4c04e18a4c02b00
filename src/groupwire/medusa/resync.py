"""Re-sync: make Groupwire's copy equal to Medusa's state again, telling every difference.

When capture has been blind (its slot dropped or invalidated, or its position forgotten),
Medusa's changes of that time never came through the stream. Re-sync compares what Medusa
holds now (one snapshot: :class:`groupwire.medusa.capture.MedusaState`) with Groupwire's
copy and acts on the difference, level-triggered: whatever happened meanwhile, and in
whatever order, the copy ends equal to the snapshot, and the events say how it moved. A
second re-sync against the same state finds nothing to do.

Every event it records carries ``reason: "resync"``: ``customer_added`` and
``customer_removed`` (the reason Medusa had, a removal or a deletion, is not known), and the
created / updated / deleted events of groups, customers and addresses. Its after-hooks get
the same reason where they take one, and a context whose correlation id is
``medusa:resync``.

Order of the events, chosen so that the fold of the membership events stays exact and that a
name or an email freed in Medusa is free in the copy before another row takes it: members
leave, then addresses, customers and groups deleted in Medusa are deleted, then groups,
customers and addresses are created or updated, then members join.

Medusa's membership rows count as a pair (group, customer) when the row, its group and its
customer are live; duplicates count once (Medusa keeps no unique constraint on the pair). The
membership map is rebuilt from the snapshot's live rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from groupwire.domain import events as ev
from groupwire.domain.addresses import ADDRESS_FIELDS, CustomerAddress
from groupwire.domain.models import Customer, CustomerGroup
from groupwire.medusa.tables import medusa_membership
from groupwire.service import AfterHook
from groupwire.store import address_repository as addresses
from groupwire.store import bulk, tables
from groupwire.store import repository as repo
from groupwire.store.address_tables import customer_address
from groupwire.store.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from groupwire.medusa.capture import MedusaState

REASON = ev.REASON_RESYNC
GROUP_COMPARED = ("name", "metadata")  # Medusa's groups have no description


class Resync:
    """The differences between one Medusa snapshot and the copy, written in ``uow``."""

    def __init__(self, uow: UnitOfWork, state: MedusaState) -> None:
        self.uow = uow
        self.conn = uow.connection
        self.state = state
        self.hooks: list[AfterHook] = []
        self.context = uow.context
        self.counts = {"groups": 0, "customers": 0, "addresses": 0, "joined": 0, "left": 0}

    def run(self) -> list[AfterHook]:
        conn, state = self.conn, self.state
        groups = {
            g.id: g
            for g in map(repo.to_group, conn.execute(_all(tables.customer_group)).mappings())
        }
        customers = {
            c.id: c for c in map(repo.to_customer, conn.execute(_all(tables.customer)).mappings())
        }
        copy_addresses = {
            a.id: a
            for a in map(addresses.to_address, conn.execute(_all(customer_address)).mappings())
        }
        medusa_groups = {g.id: g for g in state.groups}
        medusa_customers = {c.id: c for c in state.customers}
        medusa_addresses = {a.id: a for a in state.addresses}
        live_groups = {i for i, g in groups.items() if g.deleted_at is None}
        live_customers = {i for i, c in customers.items() if c.deleted_at is None}

        wanted = _pairs(state, set(medusa_groups), set(medusa_customers))
        held = repo.all_memberships(conn)
        held = {(g, c) for g, c in held if g in live_groups and c in live_customers}

        # 1. members leave
        left_groups: dict[str, list[str]] = {}
        left_customers: dict[str, list[str]] = {}
        for group_id, customer_ids in _by_group(held - wanted).items():
            removed = repo.delete_memberships(conn, group_id, customer_ids)
            gone = [c for c in customer_ids if c in removed]
            if not gone:
                continue
            self.uow.emit(ev.customers_removed(group_id, gone, self.uow.now, REASON))
            self.hook(
                "after_remove_customer_from_group",
                group=groups[group_id],
                customer_ids=gone,
                reason=REASON,
            )
            left_groups.setdefault(group_id, []).extend(gone)
            for customer_id in gone:
                left_customers.setdefault(customer_id, []).append(group_id)
            self.counts["left"] += len(gone)

        # 2. addresses, customers and groups deleted in Medusa
        for address in copy_addresses.values():
            if address.deleted_at is None and address.id not in medusa_addresses:
                self.delete_address(address, customers.get(address.customer_id))
        for customer_id in sorted(live_customers - set(medusa_customers)):
            self.delete_customer(customers[customer_id], left_customers.get(customer_id, []))
        for group_id in sorted(live_groups - set(medusa_groups)):
            self.delete_group(groups[group_id], left_groups.get(group_id, []))

        # 3. groups, customers, addresses created or changed
        for group in state.groups:
            self.sync_group(group, groups.get(group.id))
        for customer in state.customers:
            self.sync_customer(customer, customers.get(customer.id))
        for address in state.addresses:
            self.sync_address(address, copy_addresses.get(address.id))

        # 4. members join
        live_now = {g.id: g for g in state.groups}
        for group_id, customer_ids in _by_group(wanted - held).items():
            added = repo.add_live_memberships(conn, group_id, customer_ids, self.uow.now, None)
            joined = [c for c in customer_ids if c in added]
            if not joined:
                continue
            self.uow.emit(ev.customers_added(group_id, joined, self.uow.now, REASON))
            group = repo.get_group(conn, group_id) or live_now[group_id]
            self.hook("after_add_customer_to_group", group=group, customer_ids=joined)
            self.counts["joined"] += len(joined)

        # the membership map: the snapshot's live rows
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
        return self.hooks

    def hook(self, name: str, **arguments: Any) -> None:
        self.hooks.append(AfterHook(name, {**arguments, "context": self.context}))

    # --- groups ---------------------------------------------------------------------------

    def sync_group(self, group: CustomerGroup, current: CustomerGroup | None) -> None:
        if current is None or current.deleted_at is not None:
            if current is None:
                repo.insert_group(self.conn, asdict(group))
            else:  # deleted in the copy, live in Medusa
                group = replace(group, version=current.version + 1)
                repo.update_row(self.conn, tables.customer_group, group.id, asdict(group))
            self.uow.emit(_marked(ev.group_created(group)))
            self.hook("after_create_customer_group", group=group)
            self.counts["groups"] += 1
            return
        changes = _changes(current, group, GROUP_COMPARED)
        if not changes:
            return
        values: dict[str, Any] = {name: change["new"] for name, change in changes.items()}
        values.update(updated_at=group.updated_at, version=current.version + 1)
        repo.update_row(self.conn, tables.customer_group, current.id, values)
        self.uow.emit(_marked(ev.group_updated(current.id, changes)))
        if "metadata" in changes:
            diff = ev.metadata_diff(current.metadata, values["metadata"])
            if diff:
                self.uow.emit(_marked(ev.group_metadata_updated(current.id, diff)))
        self.hook("after_update_customer_group", group=replace(current, **values), changes=changes)
        self.counts["groups"] += 1

    def delete_group(self, group: CustomerGroup, removed: list[str]) -> None:
        at = self.uow.now
        values: dict[str, Any] = {"deleted_at": at, "updated_at": at, "version": group.version + 1}
        repo.update_row(self.conn, tables.customer_group, group.id, values)
        self.uow.emit(_marked(ev.group_deleted(group, len(removed))))
        gone = replace(group, **values)
        self.hook("after_delete_customer_group", group=gone, removed_customer_ids=removed)
        self.counts["groups"] += 1

    # --- customers ------------------------------------------------------------------------

    def sync_customer(self, customer: Customer, current: Customer | None) -> None:
        if current is None or current.deleted_at is not None:
            if current is None:
                repo.insert_customer(self.conn, asdict(customer))
            else:
                customer = replace(customer, version=current.version + 1)
                repo.update_row(self.conn, tables.customer, customer.id, asdict(customer))
            self.uow.emit(_marked(ev.customer_created(customer)))
            self.hook("after_create_customer", customer=customer)
            self.counts["customers"] += 1
            return
        changes = _changes(current, customer, ev.CUSTOMER_FIELDS)
        values: dict[str, Any] = {name: change["new"] for name, change in changes.items()}
        if customer.has_account != current.has_account:
            values["has_account"] = customer.has_account  # no event: not a field told
        if not values:
            return
        values.update(updated_at=customer.updated_at, version=current.version + 1)
        repo.update_row(self.conn, tables.customer, current.id, values)
        if changes:
            self.uow.emit(_marked(ev.customer_updated(current.id, changes)))
            self.hook("after_update_customer", customer=replace(current, **values), changes=changes)
            self.counts["customers"] += 1

    def delete_customer(self, customer: Customer, left: list[str]) -> None:
        at = self.uow.now
        values: dict[str, Any] = {
            "deleted_at": at,
            "updated_at": at,
            "version": customer.version + 1,
        }
        repo.update_row(self.conn, tables.customer, customer.id, values)
        self.uow.emit(_marked(ev.customer_deleted(customer, len(left))))
        gone = replace(customer, **values)
        self.hook("after_delete_customer", customer=gone, removed_group_ids=left)
        self.counts["customers"] += 1

    # --- addresses ------------------------------------------------------------------------

    def sync_address(self, address: CustomerAddress, current: CustomerAddress | None) -> None:
        created = current is None or current.deleted_at is not None
        changes = {} if created else _changes(current, address, ADDRESS_FIELDS)
        if not created and not changes:
            return  # (the customer is read only for a difference: most addresses have none)
        customer = repo.get_customer(self.conn, address.customer_id)
        if customer is None:
            return  # (Medusa's live addresses are read with their live customers only)
        if current is None or current.deleted_at is not None:
            if current is None:
                addresses.insert_address(self.conn, asdict(address))
            else:
                repo.update_row(self.conn, customer_address, address.id, asdict(address))
            self.uow.emit(_marked(ev.address_created(address)))
            self.hook("after_create_customer_address", customer=customer, address=address)
            self.counts["addresses"] += 1
            return
        values: dict[str, Any] = {name: change["new"] for name, change in changes.items()}
        values["updated_at"] = address.updated_at
        repo.update_row(self.conn, customer_address, current.id, values)
        self.uow.emit(_marked(ev.address_updated(current, changes)))
        self.hook(
            "after_update_customer_address",
            customer=customer,
            address=replace(current, **values),
            changes=changes,
        )
        self.counts["addresses"] += 1

    def delete_address(self, address: CustomerAddress, customer: Customer | None) -> None:
        at = self.uow.now
        gone: dict[str, Any] = {"deleted_at": at, "updated_at": at}
        repo.update_row(self.conn, customer_address, address.id, gone)
        self.uow.emit(ev.address_deleted(address, REASON))
        if customer is not None:
            self.hook(
                "after_delete_customer_address",
                customer=customer,
                address=replace(address, **gone),
                reason=REASON,
            )
        self.counts["addresses"] += 1


def _all(table: Any) -> Any:
    return select(table).order_by(table.c.id)


def _pairs(state: MedusaState, groups: set[str], customers: set[str]) -> set[tuple[str, str]]:
    """Medusa's distinct live (group, customer) pairs."""
    return {
        (row["customer_group_id"], row["customer_id"])
        for row in state.memberships
        if row["deleted_at"] is None
        and row["customer_group_id"] in groups
        and row["customer_id"] in customers
    }


def _by_group(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for group_id, customer_id in sorted(pairs):
        grouped.setdefault(group_id, []).append(customer_id)
    return grouped


def _marked(event: ev.PendingEvent) -> ev.PendingEvent:
    """The event, its payload marked as found by re-sync."""
    event.data["reason"] = REASON
    return event


def _changes(current: Any, wanted: Any, fields: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{field: {"old", "new"}}`` for each field whose value differs, as the service emits."""
    return {
        name: {"old": getattr(current, name), "new": getattr(wanted, name)}
        for name in fields
        if getattr(wanted, name) != getattr(current, name)
    }


def resync_state(uow: UnitOfWork, state: MedusaState) -> tuple[dict[str, int], list[AfterHook]]:
    """Write the differences between ``state`` and the copy in ``uow``, with their events;
    returns what changed (counts) and the after-hooks to run once committed."""
    resync = Resync(uow, state)
    hooks = resync.run()
    return resync.counts, hooks


__all__ = ["Resync", "resync_state"]
