"""The service layer for customer addresses: create, update and delete, with hooks and events.

Split from :mod:`groupwire.service` by aggregate, it follows the same steps in the same unit
of work: validate, lock the customer (which serialises every change to one customer's
addresses), run the before-hooks, write the rows and buffer the events, commit, run the
after-hooks. Events are ``customer.address_created``, ``customer.address_updated`` (``changes``:
``{field: {old, new}}``) and ``customer.address_deleted``, about the customer (subject and
partition are its id).

Making an address the default shipping (or billing) address clears the flag on the customer's
previous default in the same transaction; that address gets a ``customer.address_updated``
event of its own (recorded first) but no update hooks: the change its hooks see is the one
asked for. Deleting a customer soft-deletes its addresses too, as Medusa's customer module
does (see :mod:`groupwire.service.address_cascade`).
"""

from __future__ import annotations

from typing import Any

from groupwire.domain import events as ev
from groupwire.domain.addresses import (
    ADDRESS_FIELDS,
    ADDRESS_TEXT_FIELDS,
    DEFAULT_FLAGS,
    AddressDraft,
    CustomerAddress,
)
from groupwire.domain.changes import Context, ProposedUpdate
from groupwire.domain.errors import InvalidData, NotFound
from groupwire.domain.ids import CUSTOMER_ADDRESS, new_id
from groupwire.domain.models import Customer
from groupwire.hooks.plugins import has_impls
from groupwire.service import Service, merge_metadata
from groupwire.service.updates import _changes, _replace
from groupwire.service.validation import _check_text, _validate_metadata
from groupwire.store import address_repository as addresses
from groupwire.store import repository as repo
from groupwire.store.address_tables import customer_address
from groupwire.store.unit_of_work import UnitOfWork


class AddressService:
    """Changes to customer addresses; reads go through the facade (``gw.customers.addresses``)."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self._plugins = service.plugins

    def create_address(
        self, customer_id: str, *, context: Context | None = None, **fields: Any
    ) -> CustomerAddress:
        """Add an address to a live customer; every field is optional (Medusa's body)."""
        context = context or Context()
        _refuse_unknown(fields)
        draft = AddressDraft(**fields)
        validate_address_values(draft.values())

        def work(uow: UnitOfWork) -> tuple[Customer, CustomerAddress]:
            customer = _lock_customer(uow, customer_id)
            self._plugins.hook.before_create_customer_address(
                customer=customer, draft=draft, context=context
            )
            values = draft.values()
            validate_address_values(values)
            address = CustomerAddress(
                id=new_id(CUSTOMER_ADDRESS),
                customer_id=customer.id,
                created_at=uow.now,
                updated_at=uow.now,
                **values,
            )
            _clear_previous_defaults(uow, address, values)
            addresses.insert_address(uow.connection, _row(address))
            uow.emit(ev.address_created(address))
            _follow_rules(self._service, uow, customer, "address_created", context)
            return customer, address

        customer, address = self._service._transaction(context, work)
        self._service._after(
            "after_create_customer_address", customer=customer, address=address, context=context
        )
        return address

    def update_address(
        self,
        customer_id: str,
        address_id: str,
        *,
        context: Context | None = None,
        **fields: Any,
    ) -> CustomerAddress:
        """Update some fields of a customer's address; ``metadata`` is merged (keys set, a key
        set to "" removed). Equal values are dropped; a change that changes nothing writes
        and emits nothing."""
        context = context or Context()
        _refuse_unknown(fields)
        validate_address_values(fields)
        before_hook = self._plugins.hook.before_update_customer_address

        def work(
            uow: UnitOfWork,
        ) -> tuple[Customer, CustomerAddress, dict[str, dict[str, Any]]]:
            customer = _lock_customer(uow, customer_id)
            current = _live_address(uow, customer.id, address_id)
            values = dict(fields)
            if "metadata" in values:
                values["metadata"] = merge_metadata(current.metadata, values["metadata"])
            update = ProposedUpdate(values=values)
            if has_impls(before_hook):
                before_hook(customer=customer, address=current, update=update, context=context)
                _refuse_unknown(update.values)
                validate_address_values(update.values)
            changes = _changes(current, update.values, ADDRESS_FIELDS)
            if not changes:
                return customer, current, {}
            row = {name: change["new"] for name, change in changes.items()}
            row["updated_at"] = uow.now
            _clear_previous_defaults(uow, current, row)
            repo.update_row(uow.connection, customer_address, current.id, row)
            uow.emit(ev.address_updated(current, changes))
            _follow_rules(self._service, uow, customer, "address_updated", context)
            return customer, _replace(current, row), changes

        customer, address, changes = self._service._transaction(context, work)
        if changes:
            self._service._after(
                "after_update_customer_address",
                customer=customer,
                address=address,
                changes=changes,
                context=context,
            )
        return address

    def delete_address(
        self, customer_id: str, address_id: str, *, context: Context | None = None
    ) -> CustomerAddress:
        """Soft-delete a customer's address (``customer.address_deleted``, reason ``deleted``)."""
        context = context or Context()
        reason = ev.REASON_ADDRESS_DELETED

        def work(uow: UnitOfWork) -> tuple[Customer, CustomerAddress]:
            customer = _lock_customer(uow, customer_id)
            address = _live_address(uow, customer.id, address_id)
            self._plugins.hook.before_delete_customer_address(
                customer=customer, address=address, reason=reason, context=context
            )
            row = {"deleted_at": uow.now, "updated_at": uow.now}
            repo.update_row(uow.connection, customer_address, address.id, row)
            uow.emit(ev.address_deleted(address, reason))
            _follow_rules(self._service, uow, customer, "address_deleted", context)
            return customer, _replace(address, row)

        customer, address = self._service._transaction(context, work)
        self._service._after(
            "after_delete_customer_address",
            customer=customer,
            address=address,
            reason=reason,
            context=context,
        )
        return address


# --- steps and validation -----------------------------------------------------------------------


def validate_address_values(values: dict[str, Any]) -> None:
    """Medusa's address body: text fields are strings or null, the default flags booleans
    (never null), metadata a JSON object or null."""
    for name in ADDRESS_TEXT_FIELDS:
        value = values.get(name)
        if value is not None and not isinstance(value, str):
            raise InvalidData(f"{name} must be a string or null")
        if isinstance(value, str):
            _check_text(value, name)
    for name in DEFAULT_FLAGS:
        if name in values and not isinstance(values[name], bool):
            raise InvalidData(f"{name} must be a boolean")
    _validate_metadata(values)


def _refuse_unknown(fields: dict[str, Any]) -> None:
    unknown = set(fields) - set(ADDRESS_FIELDS)
    if unknown:
        raise InvalidData(f"Unknown address fields: {', '.join(sorted(unknown))}")


def _lock_customer(uow: UnitOfWork, customer_id: str) -> Customer:
    customer = repo.get_customer(uow.connection, customer_id, lock=True)
    if customer is None:
        raise NotFound("customer", customer_id)
    return customer


def _live_address(uow: UnitOfWork, customer_id: str, address_id: str) -> CustomerAddress:
    address = addresses.get_address(uow.connection, customer_id, address_id)
    if address is None:
        raise NotFound("customer_address", address_id)
    return address


def _clear_previous_defaults(
    uow: UnitOfWork, address: CustomerAddress, values: dict[str, Any]
) -> None:
    """Before ``address`` becomes a default (``values`` sets a flag), clear that flag on the
    customer's other live addresses, recording an ``address_updated`` for each."""
    cleared: dict[str, tuple[CustomerAddress, dict[str, dict[str, Any]]]] = {}
    for flag in DEFAULT_FLAGS:
        if values.get(flag) is not True:
            continue
        for other in addresses.live_defaults(
            uow.connection, address.customer_id, flag, except_id=address.id
        ):
            entry = cleared.setdefault(other.id, (other, {}))
            entry[1][flag] = {"old": True, "new": False}
    for other, changes in cleared.values():
        row: dict[str, Any] = {name: change["new"] for name, change in changes.items()}
        row["updated_at"] = uow.now
        repo.update_row(uow.connection, customer_address, other.id, row)
        uow.emit(ev.address_updated(other, changes))


def _follow_rules(
    service: Service, uow: UnitOfWork, customer: Customer, trigger: str, context: Context
) -> None:
    """The smart groups whose rules read addresses follow the change."""
    service._follow_rules(uow, [customer.id], ["addresses"], trigger, context)


def _row(address: CustomerAddress) -> dict[str, Any]:
    return {column.name: getattr(address, column.name) for column in customer_address.columns}


__all__ = ["AddressService", "validate_address_values"]
