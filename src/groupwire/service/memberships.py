"""Memberships, from both sides: one group's members and one customer's groups.

:class:`MembershipSteps` adds and removes members inside an open unit of work (before-hooks
and events included); the membership operations use them, and so do the deletions of a group
(each member leaves it first) and of a customer (it leaves each of its groups first).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from groupwire.domain import events as ev
from groupwire.domain.changes import Context
from groupwire.domain.errors import InvalidData, NotAllowed, NotFound
from groupwire.domain.limits import listing
from groupwire.domain.models import Customer, CustomerGroup
from groupwire.hooks.plugins import has_impls
from groupwire.service.core import ServiceCore
from groupwire.service.validation import _kept_ids, _unique_ids
from groupwire.store import repository as repo
from groupwire.store.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """What a membership operation really did (no-ops left out), in request order.

    ``group`` (a change of one group's members) or ``customer`` (a change of one customer's
    groups) is that entity as read in the change's own transaction, so a caller can describe
    the result without reading the database again after the commit.
    """

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    group: CustomerGroup | None = field(default=None, compare=False)
    customer: Customer | None = field(default=None, compare=False)


class MembershipSteps(ServiceCore):
    """The membership steps shared by the operations (run inside a transaction)."""

    def _follow_rules(
        self,
        uow: UnitOfWork,
        customer_ids: Sequence[str],
        touched: Iterable[str],
        trigger: str,
        context: Context,
    ) -> None:
        """Let the smart groups whose rules read ``touched`` follow a change of these
        customers, in its transaction. Overridden by
        :class:`groupwire.service.smart_groups.SmartGroupSteps`; nothing here."""

    def _add_members(
        self,
        uow: UnitOfWork,
        group: CustomerGroup,
        customer_ids: list[str],
        context: Context,
        *,
        present: set[str] | None = None,
    ) -> list[str]:
        """Add the non-members among ``customer_ids`` (``present``: the members among them,
        when the caller already read them)."""
        if not customer_ids:
            return []
        conn = uow.connection
        hooked = has_impls(self.plugins.hook.before_add_customer_to_group)
        if present is None and not hooked and repo.inserts_new_memberships(conn, len(customer_ids)):
            new = repo.insert_new_memberships(conn, group.id, customer_ids, uow.now, context.actor)
            joining = [cid for cid in customer_ids if cid in new]
            uow.emit(ev.customers_added(group.id, joining, uow.now))
            return joining
        if present is None:
            present = repo.members_among(conn, group.id, customer_ids)
        joining = [cid for cid in customer_ids if cid not in present]
        if joining and hooked:
            loaded = repo.get_customers(conn, joining)
            customers = [loaded[cid] for cid in joining]
            self.plugins.hook.before_add_customer_to_group(
                group=group, customers=customers, context=context
            )
            joining = _kept_ids(joining, customers)
        repo.insert_memberships(conn, group.id, joining, uow.now, context.actor)
        uow.emit(ev.customers_added(group.id, joining, uow.now))
        return joining

    def _remove_members(
        self,
        uow: UnitOfWork,
        group: CustomerGroup,
        customer_ids: list[str],
        reason: str,
        context: Context,
        *,
        may_filter: bool = True,
        present: set[str] | None = None,
    ) -> list[str]:
        if not customer_ids:
            return []
        conn = uow.connection
        if present is None:
            present = repo.members_among(conn, group.id, customer_ids)
        leaving = [cid for cid in customer_ids if cid in present]
        if leaving and has_impls(self.plugins.hook.before_remove_customer_from_group):
            loaded = repo.get_customers(conn, leaving)
            customers = [loaded[cid] for cid in leaving if cid in loaded]
            self.plugins.hook.before_remove_customer_from_group(
                group=group, customers=customers, reason=reason, context=context
            )
            if may_filter:
                leaving = _kept_ids(leaving, customers)
        deleted = repo.delete_memberships(conn, group.id, leaving)
        removed = [cid for cid in leaving if cid in deleted]
        uow.emit(ev.customers_removed(group.id, removed, uow.now, reason))
        return removed

    def _after_membership(
        self, group: CustomerGroup, change: MembershipChange, context: Context
    ) -> None:
        if change.added:
            self._after(
                "after_add_customer_to_group",
                group=group,
                customer_ids=change.added,
                context=context,
            )
        if change.removed:
            self._after(
                "after_remove_customer_from_group",
                group=group,
                customer_ids=change.removed,
                reason=ev.REASON_REMOVED,
                context=context,
            )


class MembershipOperations(MembershipSteps):
    """Changes of memberships, each in one transaction, all or nothing."""

    # --- memberships, from the group's side ----------------------------------------------

    def add_customers_to_group(
        self, group_id: str, customer_ids: Sequence[str], *, context: Context | None = None
    ) -> MembershipChange:
        """Add customers to a group, all or nothing; present members are skipped silently."""
        return self.update_group_customers(group_id, add=customer_ids, context=context)

    def remove_customers_from_group(
        self, group_id: str, customer_ids: Sequence[str], *, context: Context | None = None
    ) -> MembershipChange:
        """Remove customers from a group, all or nothing; non-members are skipped silently."""
        return self.update_group_customers(group_id, remove=customer_ids, context=context)

    def update_group_customers(
        self,
        group_id: str,
        *,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        context: Context | None = None,
    ) -> MembershipChange:
        """Add and remove members of one group in one transaction (the Admin API's batch)."""
        context = self._keyed(
            context, "update_group_customers", id=group_id, add=add, remove=remove
        )
        add_ids = _unique_ids(add, "add")
        remove_ids = _unique_ids(remove, "remove")
        both = set(add_ids) & set(remove_ids)
        if both:
            raise InvalidData(f"Customers both added and removed: {listing(sorted(both))}")

        def work(uow: UnitOfWork) -> tuple[CustomerGroup, MembershipChange]:
            conn = uow.connection
            # Only adding, few ids, no hook to show them to: the insert skips the members.
            inserting = (
                not remove_ids
                and repo.inserts_new_memberships(conn, len(add_ids))
                and not has_impls(self.plugins.hook.before_add_customer_to_group)
            )
            scope = repo.membership_scope(
                conn, group_id, add_ids + remove_ids, members=not inserting
            )
            group = scope.group
            if group is None:  # named first, even when customers are missing too
                raise NotFound("customer_group", group_id, field="customer_group_id")
            adding = set(add_ids)
            unknown_added = [cid for cid in scope.missing if cid in adding]
            if unknown_added:
                raise NotFound("customer", unknown_added, field="customer_id")
            removing = remove_ids
            if scope.missing:  # only unknown ids to remove: not members, skipped like those
                missing = set(scope.missing)
                removing = [cid for cid in remove_ids if cid not in missing]
                scope = repo.membership_scope(conn, group_id, add_ids + removing)
                group = scope.group
                if group is None:
                    raise NotFound("customer_group", group_id, field="customer_group_id")
            _refuse_smart([group])
            added = self._add_members(uow, group, add_ids, context, present=scope.members)
            removed = self._remove_members(
                uow, group, removing, ev.REASON_REMOVED, context, present=scope.members
            )
            touched = {f"group:{group.id}"}
            self._follow_rules(uow, added + removed, touched, "membership_changed", context)
            return group, MembershipChange(added=added, removed=removed, group=group)

        group, change = self._transaction(context, work)
        self._after_membership(group, change, context)
        return change

    # --- memberships, from the customer's side -------------------------------------------

    def update_customer_groups(
        self,
        customer_id: str,
        *,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        context: Context | None = None,
    ) -> MembershipChange:
        """Add a customer to some groups and remove it from others, in one transaction.

        The result lists group ids (``added``: groups joined, ``removed``: groups left).
        """
        context = self._keyed(
            context, "update_customer_groups", id=customer_id, add=add, remove=remove
        )
        add_ids = _unique_ids(add, "add")
        remove_ids = _unique_ids(remove, "remove")
        both = set(add_ids) & set(remove_ids)
        if both:
            raise InvalidData(f"Groups both added and removed: {listing(sorted(both))}")
        return self._change_customer_groups(customer_id, add_ids, remove_ids, context)

    def set_customer_groups(
        self, customer_id: str, group_ids: Sequence[str], *, context: Context | None = None
    ) -> MembershipChange:
        """Make ``group_ids`` exactly the customer's groups."""
        context = self._keyed(context, "set_customer_groups", id=customer_id, group_ids=group_ids)
        target = _unique_ids(group_ids, "group_ids")
        return self._change_customer_groups(customer_id, target, None, context)

    def _change_customer_groups(
        self,
        customer_id: str,
        add_ids: list[str],
        remove_ids: list[str] | None,
        context: Context,
    ) -> MembershipChange:
        """``remove_ids=None`` means "every group not in ``add_ids``" (set semantics)."""

        def work(uow: UnitOfWork) -> tuple[Customer, list[tuple[CustomerGroup, MembershipChange]]]:
            conn = uow.connection
            customer = (
                repo.get_customer(conn, customer_id)
                if repo.share_lock_customers(conn, [customer_id])
                else None
            )
            if customer is None:
                # Medusa writes (customer, group) rows in order and names the first foreign
                # key to nothing, the group's before the customer's in each row.
                found = repo.lock_groups(conn, add_ids)
                if add_ids and add_ids[0] not in found:
                    unknown = [gid for gid in add_ids if gid not in found]
                    raise NotFound("customer_group", unknown, field="customer_group_id")
                raise NotFound("customer", customer_id, field="customer_id")
            current = repo.group_ids_of(conn, customer_id)
            leaving = (
                [gid for gid in current if gid not in add_ids] if remove_ids is None else remove_ids
            )
            groups = repo.lock_groups(conn, add_ids + leaving)
            unknown = [gid for gid in add_ids if gid not in groups]
            if unknown:
                raise NotFound("customer_group", unknown, field="customer_group_id")
            _refuse_smart([groups[gid] for gid in add_ids])
            if remove_ids is None:  # "exactly these groups" leaves smart groups as they are
                leaving = [gid for gid in leaving if gid not in groups or not groups[gid].smart]
            else:
                _refuse_smart([groups[gid] for gid in leaving if gid in groups])
            # Leaving a group that does not exist (or no longer does) is a no-op, as in Medusa:
            # the customer is not in it.
            removing = [gid for gid in leaving if gid in groups]
            wanted = add_ids + removing
            done: list[tuple[CustomerGroup, MembershipChange]] = []
            for gid in sorted(set(wanted)):
                group = groups[gid]
                added = (
                    self._add_members(uow, group, [customer_id], context) if gid in add_ids else []
                )
                removed = (
                    self._remove_members(uow, group, [customer_id], ev.REASON_REMOVED, context)
                    if gid in removing
                    else []
                )
                if added or removed:
                    done.append((group, MembershipChange(added=added, removed=removed)))
            touched = {f"group:{group.id}" for group, _ in done}
            self._follow_rules(uow, [customer_id], touched, "membership_changed", context)
            return customer, done

        customer, done = self._transaction(context, work)
        for group, change in done:
            self._after_membership(group, change, context)
        joined = [group.id for group, change in done if change.added]
        left = [group.id for group, change in done if change.removed]
        return MembershipChange(added=joined, removed=left, customer=customer)


def _refuse_smart(groups: Sequence[CustomerGroup]) -> None:
    """A smart group's members follow its rule: they are not changed by hand."""
    for group in groups:
        if group.smart:
            raise NotAllowed(
                f"Customer group {group.name} ({group.id}) is a smart group: its members follow"
                " its rule. Change the rule, or its include and exclude lists"
            )
