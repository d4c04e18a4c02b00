"""Hook specifications: the documented points where plugins take part in every change.

``before_*`` hooks run inside the database transaction, after the change has been validated
and before anything is written. They may

* veto the change by raising :class:`groupwire.HookRejected` with a reason: the transaction
  rolls back, nothing is written, no event is recorded, and the caller gets the reason;
* modify the proposed change in place (the ``draft``, ``update`` or ``customers`` argument);
  the service validates the result again before writing it.

They may run more than once for one call if the database asks for a retry (a deadlock on
PostgreSQL), so they must not have side effects outside the change they inspect.

``after_*`` hooks run after the commit with the committed result. An exception there is
logged and reported (``Groupwire.hook_failures``) but never undoes the change: for work that
must not be lost, subscribe to the event instead, which is delivered at least once.

Every hook gets ``context`` (:class:`groupwire.Context`): the actor and correlation id,
and ``context.additional_data``: the extension point Medusa's workflow hooks offer, here on
customer groups and memberships too. A caller hands free-form data to the hooks of one
change, which read it to decide or to do more (an ERP number to check in
``before_create_customer``, a CRM campaign to tag in ``after_add_customer_to_group``):

* the Admin API takes it from the ``additional_data`` field of the bodies where Medusa takes
  one (creating or updating a customer or an address) and, as a Groupwire addition, of the
  group bodies (create, update) and the membership batches;
* the library takes it for any change: ``gw.groups.create("VIP",
  context=Context(additional_data={"campaign": "spring"}))``.

It is ``None`` when the caller sent none. It is request-scoped: never stored, never copied
into an event (the event log holds what changed, not what a caller said about it); a hook
that wants it remembered writes it somewhere itself, e.g. into the ``draft``'s metadata.
Hooks read it and must not modify it.
"""

from __future__ import annotations

from typing import Any

import pluggy

from groupwire.domain.addresses import AddressDraft, CustomerAddress
from groupwire.domain.changes import Context, CustomerDraft, GroupDraft, ProposedUpdate
from groupwire.domain.models import Customer, CustomerGroup

hookspec = pluggy.HookspecMarker("groupwire")
hookimpl = pluggy.HookimplMarker("groupwire")


# --- customer groups -------------------------------------------------------------------------


@hookspec
def before_create_customer_group(draft: GroupDraft, context: Context) -> None:
    """Before a group is created. May edit ``draft`` (e.g. normalise the name) or veto."""


@hookspec
def after_create_customer_group(group: CustomerGroup, context: Context) -> None:
    """After a group's creation was committed."""


@hookspec
def before_update_customer_group(
    group: CustomerGroup, update: ProposedUpdate, context: Context
) -> None:
    """Before a group is updated. ``group`` is the current state, ``update.values`` the new
    field values (``name``, ``description``, ``metadata``): edit them or veto."""


@hookspec
def after_update_customer_group(
    group: CustomerGroup, changes: dict[str, dict[str, Any]], context: Context
) -> None:
    """After an update was committed. ``changes`` maps each changed field to ``{old, new}``."""


@hookspec
def before_delete_customer_group(group: CustomerGroup, context: Context) -> None:
    """Before a group is soft-deleted (its members are removed with reason ``group_deleted``).
    May veto."""


@hookspec
def after_delete_customer_group(
    group: CustomerGroup, removed_customer_ids: list[str], context: Context
) -> None:
    """After a group's deletion was committed, with the ids of the members it had."""


# --- memberships -----------------------------------------------------------------------------


@hookspec
def before_add_customer_to_group(
    group: CustomerGroup, customers: list[Customer], context: Context
) -> None:
    """Before customers join a group, once per call with every customer that would join
    (members already in the group are left out: adding them is a no-op).

    May veto the whole call, or remove entries from ``customers`` (in place) to leave those
    customers out. Adding entries is refused: only validated customers can join.

    Also called when a smart group's rule brings customers in (``docs/smart-groups.md``):
    a veto (or a removed entry) keeps them out, is recorded as a
    ``customer_group.rule_vetoed`` event, and does not undo the change that caused it.
    """


@hookspec
def after_add_customer_to_group(
    group: CustomerGroup, customer_ids: list[str], context: Context
) -> None:
    """After the memberships were committed, with the ids that actually joined."""


@hookspec
def before_remove_customer_from_group(
    group: CustomerGroup, customers: list[Customer], reason: str, context: Context
) -> None:
    """Before customers leave a group, once per call with every member that would leave.

    ``reason`` is ``removed``, ``group_deleted``, ``customer_deleted`` or ``rule`` (a smart
    group's rule lets them go). May veto, or remove entries from ``customers`` (only for
    reasons ``removed`` and ``rule``: a deleted group or customer takes all its memberships
    with it). For ``rule``, a veto keeps the customers in and is recorded as a
    ``customer_group.rule_vetoed`` event; the change that caused it still commits.
    """


@hookspec
def after_remove_customer_from_group(
    group: CustomerGroup, customer_ids: list[str], reason: str, context: Context
) -> None:
    """After the removals were committed, with the ids that actually left and why."""


# --- customers -------------------------------------------------------------------------------


@hookspec
def before_create_customer(draft: CustomerDraft, context: Context) -> None:
    """Before a customer is created. May edit ``draft`` or veto."""


@hookspec
def after_create_customer(customer: Customer, context: Context) -> None:
    """After a customer's creation was committed."""


@hookspec
def before_update_customer(customer: Customer, update: ProposedUpdate, context: Context) -> None:
    """Before a customer is updated; ``update.values`` holds the new field values."""


@hookspec
def after_update_customer(
    customer: Customer, changes: dict[str, dict[str, Any]], context: Context
) -> None:
    """After a customer's update was committed, with ``{field: {old, new}}``."""


@hookspec
def before_delete_customer(customer: Customer, context: Context) -> None:
    """Before a customer is soft-deleted (leaving all its groups). May veto."""


@hookspec
def after_delete_customer(
    customer: Customer, removed_group_ids: list[str], context: Context
) -> None:
    """After a customer's deletion was committed, with the groups it was removed from."""


# --- customer addresses ----------------------------------------------------------------------


@hookspec
def before_create_customer_address(
    customer: Customer, draft: AddressDraft, context: Context
) -> None:
    """Before an address is added to ``customer``. May edit ``draft`` (e.g. upper-case the
    country code) or veto. If the draft is a default (``is_default_shipping`` or
    ``is_default_billing``), the customer's previous default of that kind loses the flag in
    the same change."""


@hookspec
def after_create_customer_address(
    customer: Customer, address: CustomerAddress, context: Context
) -> None:
    """After an address's creation was committed."""


@hookspec
def before_update_customer_address(
    customer: Customer, address: CustomerAddress, update: ProposedUpdate, context: Context
) -> None:
    """Before an address is updated. ``address`` is the current state, ``update.values`` the
    new field values (metadata already merged): edit them or veto. Clearing the flag of a
    previous default, a consequence of this change, runs no hooks of its own."""


@hookspec
def after_update_customer_address(
    customer: Customer,
    address: CustomerAddress,
    changes: dict[str, dict[str, Any]],
    context: Context,
) -> None:
    """After an address's update was committed, with ``{field: {old, new}}``."""


@hookspec
def before_delete_customer_address(
    customer: Customer, address: CustomerAddress, reason: str, context: Context
) -> None:
    """Before an address is soft-deleted. ``reason`` is ``deleted`` (on its own) or
    ``customer_deleted`` (once per address of a customer being deleted). May veto; a veto
    with ``customer_deleted`` vetoes the customer's deletion."""


@hookspec
def after_delete_customer_address(
    customer: Customer, address: CustomerAddress, reason: str, context: Context
) -> None:
    """After an address's deletion was committed, with the reason."""


# --- wiring ----------------------------------------------------------------------------------


@hookspec
def register_subscribers(gw: Any) -> None:
    """Called once when a :class:`groupwire.Groupwire` instance is built: a plugin may register
    its event subscribers here (``gw.subscribe(...)``), so that every process that loads the
    plugin — API server, worker — knows them by the same names."""
