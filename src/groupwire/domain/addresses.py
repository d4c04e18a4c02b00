"""Customer addresses: the entity, the draft a before-hook may edit, and the field lists.

An address belongs to one customer (``customer_id``). At most one live address of a customer
is its default shipping address and at most one its default billing address: making an
address the default of a kind clears the previous default of that kind in the same change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The fields a client sets (create and update bodies), in Medusa's order.
ADDRESS_FIELDS = (
    "address_name",
    "is_default_shipping",
    "is_default_billing",
    "company",
    "first_name",
    "last_name",
    "address_1",
    "address_2",
    "city",
    "country_code",
    "province",
    "postal_code",
    "phone",
    "metadata",
)
ADDRESS_TEXT_FIELDS = tuple(
    name
    for name in ADDRESS_FIELDS
    if name not in ("is_default_shipping", "is_default_billing", "metadata")
)
DEFAULT_FLAGS = ("is_default_shipping", "is_default_billing")


@dataclass(frozen=True, slots=True)
class CustomerAddress:
    id: str
    customer_id: str
    address_name: str | None = None
    is_default_shipping: bool = False
    is_default_billing: bool = False
    company: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    address_1: str | None = None
    address_2: str | None = None
    city: str | None = None
    country_code: str | None = None
    province: str | None = None
    postal_code: str | None = None
    phone: str | None = None
    metadata: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None


@dataclass(slots=True)
class AddressDraft:
    """An address about to be created for a customer. Hooks may change any field."""

    address_name: str | None = None
    is_default_shipping: bool = False
    is_default_billing: bool = False
    company: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    address_1: str | None = None
    address_2: str | None = None
    city: str | None = None
    country_code: str | None = None
    province: str | None = None
    postal_code: str | None = None
    phone: str | None = None
    metadata: dict[str, Any] | None = None

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ADDRESS_FIELDS}
