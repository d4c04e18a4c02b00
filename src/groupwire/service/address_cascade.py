"""A customer's deletion takes its addresses along, inside ``Service.delete_customer``.

Medusa's customer model cascades the soft delete of a customer to its addresses. Groupwire
does the same and, so that the event log still tells every change, records one
``customer.address_deleted`` (reason ``customer_deleted``) per live address, before the
``customer.deleted`` event. The address hooks run with that reason: a before-hook may veto,
which vetoes the customer's deletion; it cannot keep one address, the customer takes them all.

Kept apart from :mod:`groupwire.service.addresses` because the customers' service calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pluggy

from groupwire.domain import events as ev
from groupwire.domain.addresses import CustomerAddress
from groupwire.domain.changes import Context
from groupwire.domain.models import Customer
from groupwire.hooks.plugins import has_impls
from groupwire.store import address_repository as addresses
from groupwire.store import repository as repo
from groupwire.store.address_tables import customer_address
from groupwire.store.unit_of_work import UnitOfWork


def delete_with_customer(
    plugins: pluggy.PluginManager, uow: UnitOfWork, customer: Customer, context: Context
) -> list[CustomerAddress]:
    """Soft-delete every live address of ``customer``; returns them as deleted."""
    live = addresses.live_addresses_of(uow.connection, customer.id)
    reason = ev.REASON_CUSTOMER_DELETED
    if live and has_impls(plugins.hook.before_delete_customer_address):
        for address in live:
            plugins.hook.before_delete_customer_address(
                customer=customer, address=address, reason=reason, context=context
            )
    row = {"deleted_at": uow.now, "updated_at": uow.now}
    deleted: list[CustomerAddress] = []
    for address in live:
        repo.update_row(uow.connection, customer_address, address.id, row)
        uow.emit(ev.address_deleted(address, reason))
        deleted.append(replace(address, deleted_at=uow.now, updated_at=uow.now))
    return deleted


def after_deleted_with_customer(
    after: Callable[..., None],
    customer: Customer,
    deleted: list[CustomerAddress],
    context: Context,
) -> None:
    """Run ``after_delete_customer_address`` for each address deleted with the customer."""
    for address in deleted:
        after(
            "after_delete_customer_address",
            customer=customer,
            address=address,
            reason=ev.REASON_CUSTOMER_DELETED,
            context=context,
        )


__all__ = ["after_deleted_with_customer", "delete_with_customer"]
