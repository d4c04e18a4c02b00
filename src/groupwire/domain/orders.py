"""The order ledger's entity, its validation and its events (no I/O).

Smart groups' rules read a customer's orders (:mod:`groupwire.domain.rules`): a shop tells
Groupwire about each order it places, cancels, edits or refunds by recording the order again
under its own id (an upsert). Amounts are major units, as Medusa's (``99.95`` EUR), with at
most four decimal places. Statuses are Medusa's; a ``canceled`` or ``draft`` order counts for
no rule.

Events (subject and partition: the order's customer, so that one customer's changes, orders
included, are delivered in order):

- ``order.recorded``: an order seen for the first time; ``data`` is the order;
- ``order.updated``: ``id``, ``customer_id`` and ``changes`` ``{field: {old, new}}`` of every
  changed field (recording equal values again writes and emits nothing).

Amounts in events are JSON numbers; times ISO 8601 text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from groupwire.domain.errors import InvalidData
from groupwire.domain.events import PendingEvent
from groupwire.domain.limits import ID_MAX
from groupwire.domain.rules import amount

ORDER_RECORDED = "order.recorded"
ORDER_UPDATED = "order.updated"
ORDER_TYPES = (ORDER_RECORDED, ORDER_UPDATED)

STATUSES = ("pending", "completed", "draft", "archived", "canceled", "requires_action")
"""Medusa 2's order statuses."""
CANCELED = "canceled"
ORDER_FIELDS = ("customer_id", "currency_code", "total", "status", "placed_at", "canceled_at")
REQUIRED = ("customer_id", "currency_code", "total")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
TOTAL_MAX = Decimal(10) ** 11
"""Totals stay below this, so that every total is exactly a JSON number (a double)."""


@dataclass(frozen=True, slots=True)
class RecordedOrder:
    """One order as the ledger holds it."""

    id: str
    customer_id: str
    currency_code: str
    total: Decimal
    status: str
    placed_at: datetime | None
    canceled_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int = 1

    @property
    def counted(self) -> bool:
        """Whether rules count this order (placed, neither canceled nor a draft)."""
        return self.status not in ("canceled", "draft") and self.placed_at is not None


def validate_order_id(order_id: Any) -> str:
    if not isinstance(order_id, str) or not order_id.strip() or len(order_id) > ID_MAX:
        raise InvalidData(f"id must be a non-empty string of at most {ID_MAX} characters")
    return order_id


def validate_order_values(values: dict[str, Any]) -> dict[str, Any]:
    """The given fields checked and normalised (currency lowercased, total a Decimal, times
    in UTC); raises :class:`InvalidData` naming the first bad field."""
    unknown = sorted(set(values) - set(ORDER_FIELDS))
    if unknown:
        raise InvalidData(f"Unknown order fields: {', '.join(unknown)}")
    result = dict(values)
    if "customer_id" in values:
        customer_id = values["customer_id"]
        if not isinstance(customer_id, str) or not customer_id or len(customer_id) > ID_MAX:
            raise InvalidData("customer_id must be a customer's id")
    if "currency_code" in values:
        code = values["currency_code"]
        if not isinstance(code, str) or not _CURRENCY.match(code):
            raise InvalidData('currency_code must be an ISO 4217 code such as "eur"')
        result["currency_code"] = code.lower()
    if "total" in values:
        total = amount(values["total"], "total")
        if total < 0 or total >= TOTAL_MAX:
            raise InvalidData("total must be 0 or more and below 10^11")
        result["total"] = total
    if "status" in values and values["status"] not in STATUSES:
        raise InvalidData(f"status must be one of {', '.join(STATUSES)}")
    for name in ("placed_at", "canceled_at"):
        if name in values and values[name] is not None:
            moment = values[name]
            if not isinstance(moment, datetime):
                raise InvalidData(f"{name} must be a time")
            result[name] = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return result


def json_amount(value: Decimal) -> int | float:
    """A total as a JSON number (exact: totals have at most 15 significant digits)."""
    return int(value) if value == value.to_integral_value() else float(value)


def _json(name: str, value: Any) -> Any:
    if isinstance(value, Decimal):
        return json_amount(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


def order_json(order: RecordedOrder) -> dict[str, Any]:
    """The order as JSON (the API's answer and the ``order.recorded`` payload)."""
    return {
        "id": order.id,
        **{name: _json(name, getattr(order, name)) for name in ORDER_FIELDS},
        "created_at": _json("created_at", order.created_at),
        "updated_at": _json("updated_at", order.updated_at),
    }


def order_recorded(order: RecordedOrder) -> PendingEvent:
    data = {name: value for name, value in order_json(order).items() if name != "updated_at"}
    data.pop("created_at")
    return PendingEvent(ORDER_RECORDED, order.customer_id, order.customer_id, data)


def order_updated(order: RecordedOrder, changes: dict[str, dict[str, Any]]) -> PendingEvent:
    data = {
        "id": order.id,
        "customer_id": order.customer_id,
        "changes": {
            name: {"old": _json(name, change["old"]), "new": _json(name, change["new"])}
            for name, change in changes.items()
        },
    }
    return PendingEvent(ORDER_UPDATED, order.customer_id, order.customer_id, data)
