"""Snapshots of the domain's entities, as the service layer hands them out (immutable)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class CustomerGroup:
    id: str
    name: str
    description: str | None
    metadata: dict[str, Any] | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
    version: int = 1
    rule: dict[str, Any] | None = None
    """A smart group's rule (``docs/smart-groups.md``); None for a manual group."""
    rule_version: int = 0

    @property
    def smart(self) -> bool:
        """Whether the group's members follow a rule (and are not changed by hand)."""
        return self.rule is not None


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company_name: str | None = None
    phone: str | None = None
    has_account: bool = False
    metadata: dict[str, Any] | None = None
    created_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None
    version: int = 1

    @property
    def email_domain(self) -> str:
        """The part after the ``@``; ``""`` for a customer without email (as Medusa allows),
        so that a hook comparing domains needs no special case and never crashes."""
        return self.email.rsplit("@", 1)[-1] if self.email else ""


@dataclass(frozen=True, slots=True)
class Membership:
    customer_group_id: str
    customer_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Event:
    """One recorded event: a CloudEvents 1.0 envelope plus Groupwire's ordering and tracing fields.

    ``sequence`` is the commit order across the whole store (gap-free, unique); ``partition``
    names the ordering key (the group for group events, the customer for customer events).
    """

    id: str
    type: str
    source: str
    subject: str
    time: datetime
    data: dict[str, Any]
    sequence: int
    partition: str
    actor: str | None = None
    correlation_id: str | None = None
    specversion: str = "1.0"

    def envelope(self) -> dict[str, Any]:
        """The JSON-ready envelope delivered to subscribers, webhooks and the events API."""
        return {
            "id": self.id,
            "source": self.source,
            "specversion": self.specversion,
            "type": self.type,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "subject": self.subject,
            "datacontenttype": "application/json",
            "data": self.data,
            "sequence": self.sequence,
            "actor": self.actor,
            "correlation_id": self.correlation_id,
        }


@dataclass(slots=True)
class Page:
    """A slice of a listing plus the total count, as the Admin API returns it."""

    items: list[Any] = field(default_factory=list)
    count: int = 0
    offset: int = 0
    limit: int = 50
