"""The service layer: the one place where Groupwire's state changes.

Every operation follows the same steps, in one database transaction:

1. validate the input (``InvalidData``), look up and lock what it touches (``NotFound``);
2. run the before-hooks, which may veto (``HookRejected``) or modify the proposed change;
3. validate the (possibly modified) change again, write the rows and buffer the events;
4. commit: the unit of work writes the events to the outbox in the same transaction;
5. after the commit, tell the listeners (the relay) and run the after-hooks.

A change that writes nothing (adding a member twice, an update with equal values) emits
nothing. A change that fails at any step writes nothing and emits nothing.

The package holds one module per part; :class:`Service` is composed of them:

- ``core``: the transaction every operation runs in (retries, commit listeners, pruning of
  expired idempotency keys) and the after-hook runner;
- ``groups``, ``customers``: create, update and delete each aggregate;
- ``memberships``: a group's members and a customer's groups, and the steps shared with the
  deletions;
- ``updates``: the field update shared by groups and customers (metadata merged, no-ops
  dropped);
- ``orders``: the order ledger smart groups' rules read (record an order by its id);
- ``smart_groups``: groups whose members follow a rule, in the transaction of each cause;
- ``external``: changes another system makes (recorded once committed there, or put to the
  before-hooks just before);
- ``validation``: the checks of proposed values, run before and after the before-hooks;
- ``addresses``: a customer's addresses (:class:`~groupwire.service.addresses.AddressService`,
  over the same transaction and after-hook runner), and ``address_cascade``: the addresses a
  customer's deletion takes along.
"""

from __future__ import annotations

from groupwire.domain.errors import HookRejected
from groupwire.service.core import HookFailure
from groupwire.service.customers import CustomerOperations
from groupwire.service.external import AfterHook, BeforeHook, ExternalChange, ExternalChanges
from groupwire.service.groups import GroupOperations
from groupwire.service.memberships import MembershipChange, MembershipOperations
from groupwire.service.orders import OrderOperations, OrderRecord
from groupwire.service.smart_groups import RulePreview, SmartGroupOperations
from groupwire.service.updates import UNSET, merge_metadata


class Service(
    GroupOperations,
    CustomerOperations,
    MembershipOperations,
    OrderOperations,
    SmartGroupOperations,
    ExternalChanges,
):
    """Customer groups, customers and memberships, with hooks and events on every change.

    One class, put together from one part per aggregate (each a module of this package, all
    built on :class:`~groupwire.service.core.ServiceCore`).
    """


__all__ = [
    "UNSET",
    "AfterHook",
    "BeforeHook",
    "ExternalChange",
    "HookFailure",
    "HookRejected",
    "MembershipChange",
    "OrderRecord",
    "RulePreview",
    "Service",
    "merge_metadata",
]
