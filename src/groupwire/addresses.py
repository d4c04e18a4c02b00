"""``gw.customers.addresses``: a customer's addresses, read here and changed through
:class:`groupwire.service.addresses.AddressService` (hooks and events on every change)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from groupwire.domain.addresses import CustomerAddress
from groupwire.domain.changes import Context
from groupwire.domain.errors import NotFound
from groupwire.domain.models import Page
from groupwire.service.addresses import AddressService
from groupwire.store import address_repository as repo
from groupwire.store import repository

if TYPE_CHECKING:
    from groupwire.app import Groupwire


class Addresses:
    """Create, read, update and delete customer addresses (Medusa's customer addresses)."""

    def __init__(self, gw: Groupwire) -> None:
        self._gw = gw
        self._service = AddressService(gw.service)

    def create(
        self, customer_id: str, *, context: Context | None = None, **fields: Any
    ) -> CustomerAddress:
        """Fields: address_name, is_default_shipping, is_default_billing, company,
        first_name, last_name, address_1, address_2, city, country_code, province,
        postal_code, phone, metadata (all optional)."""
        return self._service.create_address(customer_id, context=context, **fields)

    def get(self, customer_id: str, address_id: str) -> CustomerAddress:
        """A live address of a live customer (``NotFound`` names whichever is missing)."""
        with self._gw.engine.connect() as conn:
            self._live_customer(conn, customer_id)
            address = repo.get_address(conn, customer_id, address_id)
        if address is None:
            raise NotFound("customer_address", address_id)
        return address

    def list(
        self,
        customer_id: str,
        *,
        q: str | None = None,
        filters: dict[str, Sequence[str]] | None = None,
        order: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        """A page of a customer's live addresses; ``filters`` maps company, city,
        country_code, province or postal_code to the values it may take."""
        with self._gw.engine.connect() as conn:
            self._live_customer(conn, customer_id)
            items, count = repo.list_addresses(
                conn, customer_id, q=q, filters=filters, order=order, limit=limit, offset=offset
            )
        return Page(items=items, count=count, offset=offset, limit=limit)

    def update(
        self,
        customer_id: str,
        address_id: str,
        *,
        context: Context | None = None,
        **fields: Any,
    ) -> CustomerAddress:
        return self._service.update_address(customer_id, address_id, context=context, **fields)

    def delete(
        self, customer_id: str, address_id: str, *, context: Context | None = None
    ) -> CustomerAddress:
        return self._service.delete_address(customer_id, address_id, context=context)

    @staticmethod
    def _live_customer(conn: Any, customer_id: str) -> None:
        if repository.get_customer(conn, customer_id) is None:
            raise NotFound("customer", customer_id)
