"""Event types and their payloads, exactly as the contract names them.

The service layer calls these builders; each returns a :class:`PendingEvent` that the unit of
work writes to the outbox in the same transaction as the change it describes.
"""

from __future__ import annotations

import json
from datetime import datetime
from json.encoder import encode_basestring_ascii
from typing import Any

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
)

# Why a customer left a group (the contract's `reason` values).
REASON_REMOVED = "removed"
REASON_GROUP_DELETED = "group_deleted"
REASON_CUSTOMER_DELETED = "customer_deleted"

GROUP_FIELDS = ("name", "description", "metadata")
CUSTOMER_FIELDS = ("email", "first_name", "last_name", "company_name", "phone", "metadata")


class PendingEvent:
    """An event decided by the service layer, not yet given its id and sequence.

    Its payload is held as ``data`` or as its JSON text (``encoded``), whichever the builder
    had, and the other is derived when first asked for: a bulk change formats 100,000
    payloads from one template straight into the outbox, and never needs them as dicts.
    """

    __slots__ = ("_data", "_encoded", "partition", "subject", "type")

    def __init__(
        self,
        type: str,
        subject: str,
        partition: str,
        data: dict[str, Any] | None = None,
        *,
        encoded: str | None = None,
    ) -> None:
        if (data is None) == (encoded is None):
            raise TypeError("a pending event takes its data or its JSON text, not both")
        self.type = type
        self.subject = subject
        self.partition = partition
        self._data = data
        self._encoded = encoded

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = json.loads(self._encoded)  # type: ignore[arg-type]
        return self._data

    @property
    def encoded(self) -> str:
        """The payload as stored in the outbox (``json.dumps`` with its default options)."""
        if self._encoded is None:
            self._encoded = json.dumps(self._data)
        return self._encoded

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PendingEvent):
            return NotImplemented
        return (self.type, self.subject, self.partition, self.data) == (
            other.type,
            other.subject,
            other.partition,
            other.data,
        )

    def __repr__(self) -> str:
        return f"PendingEvent({self.type!r}, {self.subject!r}, {self.partition!r}, {self.data!r})"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


_SLOT = "\x00slot\x00"


def _template(data: dict[str, Any], slot: str) -> tuple[str, str]:
    """The JSON text of ``data`` cut around the value of key ``slot``:
    ``head + json.dumps(value) + tail == json.dumps({**data, slot: value})``."""
    text = json.dumps({**data, slot: _SLOT})
    marker = json.dumps(_SLOT)
    if text.count(marker) != 1:
        raise ValueError("a payload value looks like the template's placeholder")
    head, tail = text.split(marker)
    return head, tail


def group_created(group: CustomerGroup) -> PendingEvent:
    return PendingEvent(
        GROUP_CREATED,
        group.id,
        group.id,
        {
            "id": group.id,
            "name": group.name,
            "description": group.description,
            "metadata": group.metadata,
        },
    )


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


def customers_added(group_id: str, customer_ids: list[str], at: datetime) -> list[PendingEvent]:
    """One ``customer_added`` per id, its JSON formatted from one template (bulk adds are
    large: only the customer id differs from one payload to the next)."""
    head, tail = _template(
        {"group_id": group_id, "customer_id": "", "timestamp": _iso(at)}, "customer_id"
    )
    dumps = encode_basestring_ascii  # json.dumps of a str, without its per-call overhead
    return [
        PendingEvent(CUSTOMER_ADDED, group_id, group_id, encoded=head + dumps(cid) + tail)
        for cid in customer_ids
    ]


def customers_removed(
    group_id: str, customer_ids: list[str], at: datetime, reason: str
) -> list[PendingEvent]:
    """One ``customer_removed`` per id, all with the same reason (formatted like
    :func:`customers_added`)."""
    head, tail = _template(
        {"group_id": group_id, "customer_id": "", "timestamp": _iso(at), "reason": reason},
        "customer_id",
    )
    dumps = encode_basestring_ascii  # json.dumps of a str, without its per-call overhead
    return [
        PendingEvent(CUSTOMER_REMOVED, group_id, group_id, encoded=head + dumps(cid) + tail)
        for cid in customer_ids
    ]


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
