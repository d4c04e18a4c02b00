"""Customers: create, update and soft-delete (a deleted customer leaves each of its groups
first and takes its addresses along)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection

from groupwire.domain import events as ev
from groupwire.domain.addresses import CustomerAddress
from groupwire.domain.changes import Context, CustomerDraft
from groupwire.domain.errors import Duplicate, InvalidData, NotFound
from groupwire.domain.ids import CUSTOMER, new_id
from groupwire.domain.models import Customer, CustomerGroup
from groupwire.service import address_cascade
from groupwire.service.core import _unique_violation
from groupwire.service.memberships import MembershipSteps
from groupwire.service.updates import EntityUpdates, _Kind, _replace
from groupwire.service.validation import (
    _check_version,
    _validate_customer_draft,
    _validate_customer_fields,
)
from groupwire.store import repository as repo
from groupwire.store import tables
from groupwire.store.unit_of_work import UnitOfWork


class CustomerOperations(EntityUpdates, MembershipSteps):
    """Changes of customers."""

    def create_customer(
        self,
        email: str | None = None,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        company_name: str | None = None,
        phone: str | None = None,
        has_account: bool = False,
        metadata: dict[str, Any] | None = None,
        context: Context | None = None,
    ) -> Customer:
        """Create a customer; ``email`` may be None (Medusa's customers need none). The pair
        (email, has_account) is unique among live customers; customers without email never
        collide."""
        context = self._keyed(
            context,
            "create_customer",
            email=email,
            first_name=first_name,
            last_name=last_name,
            company_name=company_name,
            phone=phone,
            has_account=has_account,
            metadata=metadata,
        )
        draft = CustomerDraft(
            email=email,
            first_name=first_name,
            last_name=last_name,
            company_name=company_name,
            phone=phone,
            has_account=has_account,
            metadata=metadata,
        )
        _validate_customer_draft(draft)

        def work(uow: UnitOfWork) -> Customer:
            self.plugins.hook.before_create_customer(draft=draft, context=context)
            _validate_customer_draft(draft)
            duplicate = _duplicate_customer(draft.email, draft.has_account)
            if draft.email is not None and repo.email_taken(
                uow.connection, draft.email, has_account=draft.has_account
            ):
                raise duplicate
            customer = Customer(
                id=new_id(CUSTOMER),
                email=draft.email,
                first_name=draft.first_name,
                last_name=draft.last_name,
                company_name=draft.company_name,
                phone=draft.phone,
                has_account=draft.has_account,
                metadata=draft.metadata,
                created_by=context.actor,
                created_at=uow.now,
                updated_at=uow.now,
            )
            with _unique_violation(duplicate):
                repo.insert_customer(uow.connection, _customer_row(customer))
            uow.emit(ev.customer_created(customer))
            self._follow_rules(uow, [customer.id], ["*"], "customer_created", context)
            return customer

        customer = self._transaction(context, work)
        self._after("after_create_customer", customer=customer, context=context)
        return customer

    def update_customer(
        self,
        customer_id: str,
        *,
        expected_version: int | None = None,
        context: Context | None = None,
        **fields: Any,
    ) -> Customer:
        """Update any of email, first_name, last_name, company_name, phone, metadata."""
        unknown = set(fields) - set(ev.CUSTOMER_FIELDS)
        if unknown:
            raise InvalidData(f"Unknown customer fields: {', '.join(sorted(unknown))}")
        return self._update(CUSTOMER_KIND, customer_id, fields, expected_version, context)

    def delete_customer(
        self,
        customer_id: str,
        *,
        expected_version: int | None = None,
        context: Context | None = None,
    ) -> Customer:
        """Soft-delete a customer; it leaves each of its groups first (``customer_deleted``)
        and its addresses are soft-deleted with it."""
        context = self._keyed(
            context, "delete_customer", id=customer_id, expected_version=expected_version
        )
        addresses: list[CustomerAddress] = []

        def work(uow: UnitOfWork) -> tuple[Customer, list[tuple[CustomerGroup, list[str]]]]:
            conn = uow.connection
            customer = repo.get_customer(conn, customer_id, lock=True)
            if customer is None:
                raise NotFound("customer", customer_id)
            _check_version("customer", customer.id, customer.version, expected_version)
            self.plugins.hook.before_delete_customer(customer=customer, context=context)
            groups = repo.lock_groups(conn, repo.group_ids_of(conn, customer.id))
            left: list[tuple[CustomerGroup, list[str]]] = []
            for group in groups.values():
                removed = self._remove_members(
                    uow,
                    group,
                    [customer.id],
                    ev.REASON_CUSTOMER_DELETED,
                    context,
                    may_filter=False,
                )
                if removed:
                    left.append((group, removed))
            addresses[:] = address_cascade.delete_with_customer(
                self.plugins, uow, customer, context
            )
            row = {"deleted_at": uow.now, "updated_at": uow.now, "version": customer.version + 1}
            repo.update_row(conn, tables.customer, customer.id, row)
            uow.emit(ev.customer_deleted(customer, len(left)))
            return _replace(customer, row), left

        customer, left = self._transaction(context, work)
        for group, removed in left:
            self._after(
                "after_remove_customer_from_group",
                group=group,
                customer_ids=removed,
                reason=ev.REASON_CUSTOMER_DELETED,
                context=context,
            )
        address_cascade.after_deleted_with_customer(self._after, customer, addresses, context)
        self._after(
            "after_delete_customer",
            customer=customer,
            removed_group_ids=[group.id for group, _ in left],
            context=context,
        )
        return customer


def _customer_row(customer: Customer) -> dict[str, Any]:
    return asdict(customer)


def _duplicate_customer(email: str | None, has_account: bool) -> Duplicate:
    return Duplicate("customer", "email", str(email), also={"has_account": has_account})


def _customer_email_taken(conn: Connection, current: Customer, email: str) -> bool:
    return repo.email_taken(conn, email, has_account=current.has_account, except_id=current.id)


def _lower_email(values: dict[str, Any]) -> dict[str, Any]:
    if isinstance(values.get("email"), str):
        values["email"] = values["email"].strip().lower()
    return values


def _follow_customer_update(
    service: MembershipSteps,
    uow: UnitOfWork,
    customer: Customer,
    changes: dict[str, dict[str, Any]],
    context: Context,
) -> None:
    """The smart groups whose rules read a changed field follow (``updated_at`` always)."""
    touched = {"metadata" if name == "metadata" else f"customer.{name}" for name in changes}
    touched.add("customer.updated_at")
    service._follow_rules(uow, [customer.id], touched, "customer_updated", context)


CUSTOMER_KIND = _Kind(
    name="customer",
    hook_arg="customer",
    table=tables.customer,
    fields=ev.CUSTOMER_FIELDS,
    unique="email",
    get=lambda conn, customer_id, lock=False: repo.get_customer(
        conn, customer_id, lock=lock, no_key=True
    ),
    taken=_customer_email_taken,
    duplicate=lambda current, email: _duplicate_customer(email, current.has_account),
    validate=_validate_customer_fields,
    normalise=_lower_email,
    updated_event=ev.customer_updated,
    metadata_event=None,
    written=_follow_customer_update,
)
