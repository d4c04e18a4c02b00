"""Entities to Medusa-shaped JSON, honouring a ``fields`` selection (relations loaded in bulk)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fastapi.responses import JSONResponse

from groupwire.api.params import Selection, Shape
from groupwire.app import Groupwire
from groupwire.auth.keys import ApiKey
from groupwire.domain.addresses import CustomerAddress
from groupwire.domain.models import Customer, CustomerGroup, Page
from groupwire.store import address_repository
from groupwire.store import repository as repo

GROUP_DEFAULTS = (
    "id",
    "name",
    "description",
    "metadata",
    "created_by",
    "created_at",
    "updated_at",
    "deleted_at",
)
CUSTOMER_DEFAULTS = (
    "id",
    "email",
    "first_name",
    "last_name",
    "company_name",
    "phone",
    "has_account",
    "metadata",
    "created_by",
    "created_at",
    "updated_at",
    "deleted_at",
)
# Medusa's default fields of the address routes (its query config leaves out the default
# flags and deleted_at: ``fields=+is_default_shipping`` asks for them); ``*addresses`` on a
# customer returns every field.
ADDRESS_DEFAULTS = (
    "id",
    "address_name",
    "company",
    "customer_id",
    "first_name",
    "last_name",
    "address_1",
    "address_2",
    "city",
    "province",
    "postal_code",
    "country_code",
    "phone",
    "metadata",
    "created_at",
    "updated_at",
)
ADDRESS_OPTIONAL = ("is_default_shipping", "is_default_billing", "deleted_at")
ADDRESS_SHAPE = Shape(ADDRESS_DEFAULTS, optional=ADDRESS_OPTIONAL)
ADDRESS_ORDER = (*ADDRESS_DEFAULTS, *ADDRESS_OPTIONAL)
GROUP_SHAPE = Shape(GROUP_DEFAULTS, {"customers": Shape(CUSTOMER_DEFAULTS)})
CUSTOMER_SHAPE = Shape(
    CUSTOMER_DEFAULTS,
    {"groups": Shape(GROUP_DEFAULTS), "addresses": Shape(ADDRESS_DEFAULTS + ADDRESS_OPTIONAL)},
)
GROUP_ORDER = ("id", "name", "created_at", "updated_at")
CUSTOMER_ORDER = (
    "id",
    "email",
    "first_name",
    "last_name",
    "company_name",
    "created_at",
    "updated_at",
)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _plain(entity: Any, fields: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(entity, name)
        out[name] = iso(value) if isinstance(value, datetime) else value
    return out


def groups_json(
    gw: Groupwire, groups: Sequence[CustomerGroup], selection: Selection
) -> list[dict[str, Any]]:
    rows = [_plain(group, selection.fields) for group in groups]
    members = selection.relations.get("customers")
    if members is not None:
        with gw.engine.connect() as conn:
            found = repo.members_of_groups(conn, [group.id for group in groups])
        for row, group in zip(rows, groups, strict=True):
            row["customers"] = [_plain(c, members.fields) for c in found[group.id]]
    return rows


def customers_json(
    gw: Groupwire, customers: Sequence[Customer], selection: Selection
) -> list[dict[str, Any]]:
    rows = [_plain(customer, selection.fields) for customer in customers]
    groups = selection.relations.get("groups")
    if groups is not None:
        with gw.engine.connect() as conn:
            found = repo.groups_of_customers(conn, [customer.id for customer in customers])
        for row, customer in zip(rows, customers, strict=True):
            row["groups"] = [_plain(g, groups.fields) for g in found[customer.id]]
    addresses = selection.relations.get("addresses")
    if addresses is not None:
        with gw.engine.connect() as conn:
            owned = address_repository.addresses_of_customers(conn, [c.id for c in customers])
        for row, customer in zip(rows, customers, strict=True):
            row["addresses"] = addresses_json(owned[customer.id], addresses)
    return rows


def addresses_json(
    addresses: Sequence[CustomerAddress], selection: Selection
) -> list[dict[str, Any]]:
    return [_plain(address, selection.fields) for address in addresses]


def api_key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "scopes": list(key.scopes),
        "created_at": iso(key.created_at),
        "revoked_at": iso(key.revoked_at),
        "last_used_at": iso(key.last_used_at),
    }


def deleted_json(entity_id: str, kind: str) -> dict[str, Any]:
    return {"id": entity_id, "object": kind, "deleted": True}


def page_response(key: str, items: Sequence[Any], page: Page) -> JSONResponse:
    """Medusa's list envelope: the page's items (as JSON) under ``key``, with ``count``,
    ``offset`` and ``limit``."""
    return JSONResponse(
        {key: list(items), "count": page.count, "offset": page.offset, "limit": page.limit}
    )
