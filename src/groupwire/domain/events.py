"""Event types and their payloads, exactly as the contract names them.

The service layer calls these builders; each returns a :class:`PendingEvent` (or, for the
members of a bulk change, a :class:`PendingRun`) that the unit of work writes to the outbox in
the same transaction as the change it describes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from groupwire.domain.addresses import ADDRESS_FIELDS, CustomerAddress
from groupwire.domain.models import Customer, CustomerGroup

GROUP_CREATED = "customer_group.created"
GROUP_UPDATED = "customer_group.updated"
GROUP_METADATA_UPDATED = "customer_group.metadata_updated"
GROUP_DELETED = "customer_group.deleted"
CUSTOMER_ADDED = "customer_group.customer_added"
CUSTOMER_REMOVED = "customer_group.customer_removed"
CUSTOMER_CREATED = "customer.created"
CUSTOMER_UPDATED = "customer.updated"
CUSTOMER_DELETED = "customer.deleted"
ADDRESS_CREATED = "customer.address_created"
ADDRESS_UPDATED = "customer.address_updated"
ADDRESS_DELETED = "customer.address_deleted"
RULE_VETOED = "customer_group.rule_vetoed"

ALL_TYPES = (
    GROUP_CREATED,
    GROUP_UPDATED,
    GROUP_METADATA_UPDATED,
    GROUP_DELETED,
    CUSTOMER_ADDED,
    CUSTOMER_REMOVED,
    CUSTOMER_CREATED,
    CUSTOMER_UPDATED,
    CUSTOMER_DELETED,
    ADDRESS_CREATED,
    ADDRESS_UPDATED,
    ADDRESS_DELETED,
    RULE_VETOED,
)

# Why a customer left a group (the contract's `reason` values).
REASON_REMOVED = "removed"
REASON_GROUP_DELETED = "group_deleted"
REASON_CUSTOMER_DELETED = "customer_deleted"
REASON_RULE = "rule"  # a smart group's rule added or removed the customer
# Why an address was deleted: on its own, or with its customer (REASON_CUSTOMER_DELETED).
REASON_ADDRESS_DELETED = "deleted"
# A change found by comparing another system's state with the copy (the Medusa bridge's
# re-sync), not seen as it happened: on every event it records, joins included.
REASON_RESYNC = "resync"

GROUP_FIELDS = ("name", "description", "metadata")
CUSTOMER_FIELDS = ("email", "first_name", "last_name", "company_name", "phone", "metadata")


@dataclass(slots=True)
class PendingEvent:
    """An event decided by the service layer, not yet given its id and sequence."""

    type: str
    subject: str
    partition: str
    data: dict[str, Any]

    @property
    def span(self) -> int:
        return 1


class PendingRun:
    """The events of one bulk change: one per value of ``values``, all of one type, subject
    and partition, with payloads that differ only in ``key``.

    Event ``n`` of the run has the payload ``{**data, key: values[n]}`` (``data`` holds
    ``key`` with the value None, so every payload keeps the same key order). A run of
    100,000 customers added is recorded as one outbox row and expanded again when read
    (see ``groupwire.store.tables.event``).
    """

    __slots__ = ("data", "key", "partition", "subject", "type", "values")

    def __init__(
        self,
        type: str,
        subject: str,
        partition: str,
        data: dict[str, Any],
        key: str,
        values: list[Any],
    ) -> None:
        self.type = type
        self.subject = subject
        self.partition = partition
        self.data = {**data, key: None}
        self.key = key
        self.values = values

    @property
    def span(self) -> int:
        return len(self.values)

    def payload(self, offset: int) -> dict[str, Any]:
        return {**self.data, self.key: self.values[offset]}

    def events(self) -> list[PendingEvent]:
        """The run as single events (a run of one is recorded as a plain event)."""
        return [
            PendingEvent(self.type, self.subject, self.partition, self.payload(offset))
            for offset in range(len(self.values))
        ]

    @property
    def encoded_spread(self) -> str:
        """The stored ``spread`` column: ``{key: values}`` as JSON."""
        return json.dumps({self.key: self.values})

    def __repr__(self) -> str:
        return (
            f"PendingRun({self.type!r}, {self.subject!r}, {self.data!r}, "
            f"{self.key!r}: {len(self.values)} values)"
        )


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def group_created(group: CustomerGroup) -> PendingEvent:
    """The new group; a smart group's also carries its ``rule`` and ``rule_version``."""
    data: dict[str, Any] = {
        "id": group.id,
        "name": group.name,
        "description": group.description,
        "metadata": group.metadata,
    }
    if group.rule is not None:
        data.update(rule=group.rule, rule_version=group.rule_version)
    return PendingEvent(GROUP_CREATED, group.id, group.id, data)


def group_updated(group_id: str, changes: dict[str, dict[str, Any]]) -> PendingEvent:
    return PendingEvent(GROUP_UPDATED, group_id, group_id, {"id": group_id, "changes": changes})


def metadata_diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any] | None:
    """Key-level difference between two metadata objects, or None when they hold the same."""
    old = old or {}
    new = new or {}
    added = {k: v for k, v in new.items() if k not in old}
    changed = {k: {"old": old[k], "new": v} for k, v in new.items() if k in old and old[k] != v}
    removed = sorted(k for k in old if k not in new)
    if not (added or changed or removed):
        return None
    return {"added": added, "changed": changed, "removed": removed}


def group_metadata_updated(group_id: str, diff: dict[str, Any]) -> PendingEvent:
    return PendingEvent(GROUP_METADATA_UPDATED, group_id, group_id, {"id": group_id, **diff})


def group_deleted(group: CustomerGroup, member_count: int) -> PendingEvent:
    return PendingEvent(
        GROUP_DELETED,
        group.id,
        group.id,
        {"id": group.id, "name": group.name, "member_count": member_count},
    )


def customers_added(
    group_id: str, customer_ids: list[str], at: datetime, reason: str | None = None
) -> PendingRun:
    """One ``customer_added`` per id, as one run; a ``reason`` only when one is given (a
    join found by re-sync)."""
    data: dict[str, Any] = {"group_id": group_id, "customer_id": None, "timestamp": _iso(at)}
    if reason is not None:
        data["reason"] = reason
    return PendingRun(CUSTOMER_ADDED, group_id, group_id, data, "customer_id", customer_ids)


def customers_removed(
    group_id: str, customer_ids: list[str], at: datetime, reason: str
) -> PendingRun:
    """One ``customer_removed`` per id, all with the same reason, as one run."""
    data = {"group_id": group_id, "customer_id": None, "timestamp": _iso(at), "reason": reason}
    return PendingRun(CUSTOMER_REMOVED, group_id, group_id, data, "customer_id", customer_ids)


def rule_customers_added(
    group_id: str, customer_ids: list[str], at: datetime, rule_version: int, trigger: str
) -> PendingRun:
    """One ``customer_added`` per id that a smart group's rule brought in, as one run."""
    return _rule_run(CUSTOMER_ADDED, group_id, customer_ids, at, rule_version, trigger)


def rule_customers_removed(
    group_id: str, customer_ids: list[str], at: datetime, rule_version: int, trigger: str
) -> PendingRun:
    """One ``customer_removed`` (reason ``rule``) per id a smart group's rule let go."""
    return _rule_run(CUSTOMER_REMOVED, group_id, customer_ids, at, rule_version, trigger)


def _rule_run(
    event_type: str,
    group_id: str,
    customer_ids: list[str],
    at: datetime,
    rule_version: int,
    trigger: str,
) -> PendingRun:
    data = {
        "group_id": group_id,
        "customer_id": None,
        "timestamp": _iso(at),
        "reason": REASON_RULE,
        "rule_version": rule_version,
        "trigger": trigger,
    }
    return PendingRun(event_type, group_id, group_id, data, "customer_id", customer_ids)


def rule_vetoed(
    group_id: str,
    action: str,
    customer_ids: list[str],
    message: str | None,
    rule_version: int,
    trigger: str,
) -> PendingEvent:
    """A before-hook kept customers from joining (``action: add``) or leaving (``remove``)
    a smart group as its rule asked; ``message`` is the veto's reason (None when the hook
    only dropped them from the list)."""
    return PendingEvent(
        RULE_VETOED,
        group_id,
        group_id,
        {
            "group_id": group_id,
            "action": action,
            "customer_ids": customer_ids,
            "message": message,
            "rule_version": rule_version,
            "trigger": trigger,
        },
    )


def customer_created(customer: Customer) -> PendingEvent:
    return PendingEvent(
        CUSTOMER_CREATED,
        customer.id,
        customer.id,
        {
            "id": customer.id,
            "email": customer.email,
            "first_name": customer.first_name,
            "last_name": customer.last_name,
            "company_name": customer.company_name,
            "phone": customer.phone,
            "metadata": customer.metadata,
        },
    )


def customer_updated(customer_id: str, changes: dict[str, dict[str, Any]]) -> PendingEvent:
    return PendingEvent(
        CUSTOMER_UPDATED, customer_id, customer_id, {"id": customer_id, "changes": changes}
    )


def customer_deleted(customer: Customer, group_count: int) -> PendingEvent:
    return PendingEvent(
        CUSTOMER_DELETED,
        customer.id,
        customer.id,
        {"id": customer.id, "email": customer.email, "group_count": group_count},
    )


# Address events are about the customer: subject and partition are the customer's id, so a
# subscriber sees one customer's changes, addresses included, in order.


def address_created(address: CustomerAddress) -> PendingEvent:
    data = {"id": address.id, "customer_id": address.customer_id}
    data.update({name: getattr(address, name) for name in ADDRESS_FIELDS})
    return PendingEvent(ADDRESS_CREATED, address.customer_id, address.customer_id, data)


def address_updated(address: CustomerAddress, changes: dict[str, dict[str, Any]]) -> PendingEvent:
    return PendingEvent(
        ADDRESS_UPDATED,
        address.customer_id,
        address.customer_id,
        {"id": address.id, "customer_id": address.customer_id, "changes": changes},
    )


def address_deleted(address: CustomerAddress, reason: str) -> PendingEvent:
    return PendingEvent(
        ADDRESS_DELETED,
        address.customer_id,
        address.customer_id,
        {"id": address.id, "customer_id": address.customer_id, "reason": reason},
    )
