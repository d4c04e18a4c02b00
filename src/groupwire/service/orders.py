"""The order ledger: record an order (new, placed, canceled, edited, refunded) by its id.

Orders have no before-hooks: they are facts the shop reports, not changes Groupwire may
refuse. Each recording is one transaction: the order row, its event (``order.recorded`` or
``order.updated``, see :mod:`groupwire.domain.orders`) and, for smart groups, the
memberships that change because of it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from groupwire.domain.changes import Context
from groupwire.domain.errors import InvalidData, NotFound
from groupwire.domain.orders import (
    CANCELED,
    ORDER_FIELDS,
    REQUIRED,
    RecordedOrder,
    order_recorded,
    order_updated,
    validate_order_id,
    validate_order_values,
)
from groupwire.service.memberships import MembershipSteps
from groupwire.store import orders as ledger
from groupwire.store import repository as repo
from groupwire.store.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """What recording an order did: the order as it now is, whether it was new, and the
    fields that changed (``{field: {old, new}}``; empty when nothing did)."""

    order: RecordedOrder
    created: bool
    changes: dict[str, dict[str, Any]]


class OrderOperations(MembershipSteps):
    """Recording orders."""

    def record_order(
        self, order_id: str, *, context: Context | None = None, **fields: Any
    ) -> OrderRecord:
        """Create or update the order ``order_id`` with ``fields`` (any of customer_id,
        currency_code, total, status, placed_at, canceled_at).

        A new order needs ``customer_id`` (a live customer), ``currency_code`` and
        ``total``; its status defaults to ``pending`` and ``placed_at`` to now (a draft has
        none). Becoming ``canceled`` sets ``canceled_at`` to now unless given. Recording the
        same values again writes and emits nothing.
        """
        context = self._keyed(context, "record_order", id=order_id, values=fields)
        validate_order_id(order_id)
        values = validate_order_values(fields)

        def work(uow: UnitOfWork) -> tuple[RecordedOrder, bool, dict[str, dict[str, Any]]]:
            order, before, changes = _record(uow, order_id, values)
            if before is None:
                trigger = "order_placed" if order.counted else "order_updated"
                self._follow_rules(uow, [order.customer_id], ["orders"], trigger, context)
            elif changes:
                self._follow_rules(
                    uow,
                    sorted({before.customer_id, order.customer_id}),
                    ["orders"],
                    _trigger(before, order),
                    context,
                )
            return order, before is None, changes

        order, created, changes = self._transaction(context, work)
        return OrderRecord(order, created, changes)

    @staticmethod
    def _new_order(uow: UnitOfWork, order_id: str, values: dict[str, Any]) -> RecordedOrder:
        missing = [name for name in REQUIRED if name not in values]
        if missing:
            raise InvalidData(f"A new order needs {', '.join(missing)}")
        customer_id = values["customer_id"]
        if repo.get_customer(uow.connection, customer_id) is None:
            raise NotFound("customer", customer_id, field="customer_id")
        status = values.get("status", "pending")
        placed_at = values.get("placed_at", None if status == "draft" else uow.now)
        canceled_at = values.get("canceled_at", uow.now if status == CANCELED else None)
        order = RecordedOrder(
            id=order_id,
            customer_id=customer_id,
            currency_code=values["currency_code"],
            total=values["total"],
            status=status,
            placed_at=placed_at,
            canceled_at=canceled_at,
            created_at=uow.now,
            updated_at=uow.now,
        )
        ledger.insert_order(uow.connection, order)
        uow.emit(order_recorded(order))
        return order

    @staticmethod
    def _changed_order(
        uow: UnitOfWork, current: RecordedOrder, values: dict[str, Any]
    ) -> tuple[RecordedOrder, dict[str, dict[str, Any]]]:
        values = dict(values)
        canceling = values.get("status") == CANCELED and current.status != CANCELED
        if canceling and "canceled_at" not in values and current.canceled_at is None:
            values["canceled_at"] = uow.now
        changes = {
            name: {"old": getattr(current, name), "new": values[name]}
            for name in ORDER_FIELDS
            if name in values and values[name] != getattr(current, name)
        }
        if not changes:
            return current, {}
        new_customer = changes.get("customer_id", {}).get("new")
        if new_customer is not None and repo.get_customer(uow.connection, new_customer) is None:
            raise NotFound("customer", new_customer, field="customer_id")
        row = {name: change["new"] for name, change in changes.items()}
        row.update(updated_at=uow.now, version=current.version + 1)
        ledger.update_order(uow.connection, current.id, row)
        order = replace(current, **row)
        uow.emit(order_updated(order, changes))
        return order, changes


def record_order_in(uow: UnitOfWork, order_id: str, **fields: Any) -> OrderRecord:
    """:meth:`OrderOperations.record_order` inside a transaction already open: for a change
    another system committed (capture from Medusa's orders), through
    :meth:`Service.apply_external_change`. Raises as ``record_order`` does (bad values, an
    unknown customer) before writing anything.

    It follows no rule: beside a Medusa store the memberships are Medusa's, and what rules
    make of the captured orders is the reconciler's (docs/smart-groups.md)."""
    validate_order_id(order_id)
    order, before, changes = _record(uow, order_id, validate_order_values(fields))
    return OrderRecord(order, before is None, changes)


def _record(
    uow: UnitOfWork, order_id: str, values: dict[str, Any]
) -> tuple[RecordedOrder, RecordedOrder | None, dict[str, dict[str, Any]]]:
    """Write the order: (the order as it now is, as it was before or None when new, the
    fields that changed)."""
    conn = uow.connection
    ledger.lock_order_id(conn, order_id)
    current = ledger.get_order(conn, order_id)
    customer_ids = {values.get("customer_id") or (current and current.customer_id)}
    if current is not None:
        customer_ids.add(current.customer_id)
    for cid in sorted(str(c) for c in customer_ids if c):
        repo.get_customer(conn, cid, lock=True, no_key=True)  # one customer's changes in turn
    if current is None:
        return OrderOperations._new_order(uow, order_id, values), None, {}
    order, changes = OrderOperations._changed_order(uow, current, values)
    return order, current, changes


def _trigger(before: RecordedOrder, after: RecordedOrder) -> str:
    """Why the rules reading orders are evaluated again (the membership events' trigger)."""
    if after.status == CANCELED and before.status != CANCELED:
        return "order_canceled"
    if after.counted and not before.counted:
        return "order_placed"
    return "order_updated"
