"""Entities to Medusa-shaped JSON, honouring a ``fields`` selection (relations loaded in bulk).

Relations (a group's thousand members) are built straight from their rows by the store.
Entities and relations leave their timestamps as ``datetime``: the answer's encoder
(:mod:`groupwire.api.json_body`) writes them exactly as :func:`iso` would, so such JSON must
leave through ``JSONBody``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from fastapi.responses import JSONResponse
from sqlalchemy.engine import Connection

from groupwire.api.json_body import JSONBody
from groupwire.api.params import Selection, Shape, etag
from groupwire.app import Groupwire
from groupwire.auth.keys import ApiKey
from groupwire.domain.addresses import CustomerAddress
from groupwire.domain.errors import Unavailable
from groupwire.domain.models import Customer, CustomerGroup, Page
from groupwire.store import address_repository
from groupwire.store import repository as repo
from groupwire.store.engine import read_retrying

T = TypeVar("T")

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
GROUP_OPTIONAL = ("rule", "rule_version")
"""A smart group's rule, with ``fields=+rule,+rule_version`` (a Groupwire addition)."""
GROUP_SHAPE = Shape(
    GROUP_DEFAULTS, {"customers": Shape(CUSTOMER_DEFAULTS)}, optional=GROUP_OPTIONAL
)
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
    *(f"groups.{name}" for name in GROUP_ORDER),
)
"""Customers sort by their own fields or, as in Medusa, by a field of their groups."""


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _plain(entity: Any, fields: Sequence[str]) -> dict[str, Any]:
    """The entity's ``fields``; timestamps stay ``datetime``: the answer's encoder
    (:class:`~groupwire.api.json_body.JSONBody`) writes them as :func:`iso` would, in C."""
    return {name: getattr(entity, name) for name in fields}


def _read(gw: Groupwire, conn: Connection | None, read: Callable[[Connection], T]) -> T:
    """``read`` on ``conn`` (a change's transaction, answering it before its commit), or on a
    connection of its own, retried once (see ``read_retrying``)."""
    return read(conn) if conn is not None else read_retrying(gw.engine, read)


def groups_json(
    gw: Groupwire,
    groups: Sequence[CustomerGroup],
    selection: Selection,
    conn: Connection | None = None,
) -> list[dict[str, Any]]:
    """Groups as JSON; relations read on ``conn`` when given (see ``_read``)."""
    rows = [_plain(group, selection.fields) for group in groups]
    members = selection.relations.get("customers")
    if members is not None:
        ids = [group.id for group in groups]
        found = _read(gw, conn, lambda c: repo.members_json_of_groups(c, ids, members.fields))
        for row, group in zip(rows, groups, strict=True):
            row["customers"] = found[group.id]
    return rows


def customers_json(
    gw: Groupwire,
    customers: Sequence[Customer],
    selection: Selection,
    conn: Connection | None = None,
) -> list[dict[str, Any]]:
    """Customers as JSON; relations read on ``conn`` when given (see ``_read``)."""
    rows = [_plain(customer, selection.fields) for customer in customers]
    groups = selection.relations.get("groups")
    if groups is not None:
        ids = [customer.id for customer in customers]
        found = _read(gw, conn, lambda c: repo.groups_json_of_customers(c, ids, groups.fields))
        for row, customer in zip(rows, customers, strict=True):
            row["groups"] = found[customer.id]
    addresses = selection.relations.get("addresses")
    if addresses is not None:
        ids = [customer.id for customer in customers]
        owned = _read(gw, conn, lambda c: address_repository.addresses_of_customers(c, ids))
        for row, customer in zip(rows, customers, strict=True):
            row["addresses"] = addresses_json(owned[customer.id], addresses)
    return rows


def addresses_json(
    addresses: Sequence[CustomerAddress], selection: Selection
) -> list[dict[str, Any]]:
    return [_plain(address, selection.fields) for address in addresses]


OMITTED_HEADER = "Groupwire-Omitted"


def committed_json(
    render: Callable[[Selection], dict[str, Any]], selection: Selection
) -> tuple[dict[str, Any], dict[str, str]]:
    """The JSON of an entity a committed change returned, and extra response headers.

    The entity's own fields come from the change itself; only requested relations are read
    (retried once). When that read fails too, the change still stands, so the answer is still
    a success: without those relations, named in the ``Groupwire-Omitted`` header.
    """
    try:
        return render(selection), {}
    except Unavailable:
        if not selection.relations:
            raise
        omitted = ",".join(selection.relations)
        return render(Selection(selection.fields)), {OMITTED_HEADER: omitted}


def one_response(
    key: str,
    render: Callable[[Selection], dict[str, Any]],
    selection: Selection,
    version: int,
    *,
    committed: bool = False,
) -> JSONResponse:
    """``{key: entity}`` with its ETag. ``committed``: the answer to a change already
    committed, which stays a success when its relations cannot be read (``committed_json``)."""
    headers = {"ETag": etag(version)}
    if committed:
        entity, extra = committed_json(render, selection)
        headers.update(extra)
    else:
        entity = render(selection)
    return JSONBody({key: entity}, headers=headers)


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
    return JSONBody(
        {key: list(items), "count": page.count, "offset": page.offset, "limit": page.limit}
    )
