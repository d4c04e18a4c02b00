"""Changes another system makes to the data Groupwire keeps a copy of.

A change already committed there is recorded as Groupwire's copy, with its events and
after-hooks: in one call (:meth:`ExternalChanges.apply_external_change`) or written in pieces
(:meth:`ExternalChanges.begin_external_change`, :class:`ExternalChange`). A change about to be
made there can first be put to the before-hooks (:meth:`ExternalChanges.run_before_hook`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from groupwire.domain import events as ev
from groupwire.domain.changes import Context, CustomerDraft, GroupDraft, ProposedUpdate
from groupwire.hooks.plugins import has_impls
from groupwire.service.core import ServiceCore
from groupwire.service.customers import CUSTOMER_KIND
from groupwire.service.groups import GROUP_KIND
from groupwire.service.validation import _kept_ids, _validate_customer_draft, _validate_group_draft
from groupwire.store.unit_of_work import UnitOfWork

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AfterHook:
    """One after-hook call an external change asks for, run once its transaction committed
    (``name`` is the hook's name, ``arguments`` its keyword arguments)."""

    name: str
    arguments: dict[str, Any]


@dataclass(slots=True)
class BeforeHook:
    """One before-hook call for a change another system is about to make
    (:meth:`Service.run_before_hook`): ``name`` is the hook's name, ``arguments`` its keyword
    arguments without ``context``. The hooks edit the proposed change inside ``arguments``
    (a ``draft``, an ``update``, a ``customers`` list) in place."""

    name: str
    arguments: dict[str, Any]


class ExternalChanges(ServiceCore):
    """Changes made by another system, not proposed through Groupwire."""

    # --- changes already committed elsewhere ---------------------------------------------

    def apply_external_change(
        self,
        work: Callable[[UnitOfWork], tuple[T, Sequence[AfterHook]]],
        *,
        context: Context | None = None,
        at: datetime | None = None,
        durable: bool = False,
    ) -> T:
        """Record a change another system has already committed (for instance a row change
        read from its database's replication stream) as Groupwire's copy and events.

        Every other operation here proposes a change: it validates it and lets before-hooks
        veto or modify it. An external change has already happened, so neither happens: no
        before-hook runs, nothing is validated, nothing can be refused. ``work`` writes
        Groupwire's rows and emits the events (built by :mod:`groupwire.domain.events`)
        through the unit of work, together with any bookkeeping of its own (how far it has
        read the other system), all in one transaction; it returns its result and the
        after-hooks to call. ``at``, the time the change was committed over there, becomes
        the unit of work's ``now`` (the events' time). After the commit the commit listeners
        (the relay) are told and the after-hooks run in order, as for any change; a failing
        after-hook is recorded in ``hook_failures`` and stops no other.

        ``work`` may run more than once (a deadlock is retried): it must read what it needs
        inside the transaction it is given. ``durable``: the commit is on disk when this
        returns (see :class:`UnitOfWork`), for a caller that then tells the other system it
        may forget the change.
        """
        context = context or Context()
        hooks: list[AfterHook] = []

        def recorded(uow: UnitOfWork) -> T:
            if at is not None:
                uow.now = at
            result, after = work(uow)
            hooks[:] = after
            return result

        result = self._transaction(context, recorded, durable=durable)
        for hook in hooks:
            self._after(hook.name, **hook.arguments)
        return result

    def begin_external_change(
        self, *, context: Context | None = None, at: datetime | None = None, durable: bool = False
    ) -> ExternalChange:
        """Open the transaction of an external change that is written in pieces, as it
        arrives (a large transaction read from another database's replication stream).

        What :meth:`apply_external_change` does in one call, here in three steps: the
        caller writes through ``.uow`` as often as it needs, then :meth:`ExternalChange.commit`
        commits, tells the commit listeners and runs the after-hooks, or
        :meth:`ExternalChange.rollback` leaves nothing written. Unlike
        :meth:`apply_external_change` nothing is retried: the pieces are gone once written,
        so after a failure (a deadlock too) the caller rolls back and writes the change again
        whole, with :meth:`apply_external_change`.
        """
        uow = UnitOfWork(
            self.engine,
            source=self.source,
            context=context or Context(),
            key_ttl=self.key_ttl,
            durable=durable,
        )
        uow.__enter__()
        if at is not None:
            uow.now = at
        return ExternalChange(self, uow)

    # --- changes about to be made elsewhere ----------------------------------------------

    def run_before_hook(self, call: BeforeHook, *, context: Context | None = None) -> BeforeHook:
        """Put a change another system is about to make to the before-hooks, without making it.

        The counterpart of :meth:`apply_external_change` for the moment before the change: a
        proxy in front of another system's API builds the arguments Groupwire's own operation
        would build (a ``GroupDraft``, the current entity and a ``ProposedUpdate`` with
        metadata already merged, the customers that would join or leave) and asks here. The
        hooks run as they do inside an operation: a veto raises :class:`HookRejected`; a
        modification is validated again as the operation would before writing
        (:class:`InvalidData` when a hook left the change invalid or added customers to a
        membership change; the customers of a ``group_deleted`` or ``customer_deleted``
        removal cannot be filtered, as in the operations). Returns ``call``, its change as
        the hooks left it. Nothing is written, nothing is emitted, no transaction is opened:
        what the other system then does is its own, and after-hooks run only once the change
        comes back as an external change.
        """
        context = context or Context()
        hook = getattr(self.plugins.hook, call.name)
        if not has_impls(hook):
            return call
        arguments = call.arguments
        customers = arguments.get("customers")
        original = list(customers) if isinstance(customers, list) else None
        hook(**arguments, context=context)
        draft, update = arguments.get("draft"), arguments.get("update")
        if isinstance(draft, GroupDraft):
            _validate_group_draft(draft)
        elif isinstance(draft, CustomerDraft):
            _validate_customer_draft(draft)
        if isinstance(update, ProposedUpdate) and call.name in UPDATE_KINDS:
            kind = UPDATE_KINDS[call.name]
            kind.validate(update.values)
            update.values = kind.normalise(update.values)
        if original is not None:
            proposed = [c.id for c in original]
            if arguments.get("reason", ev.REASON_REMOVED) == ev.REASON_REMOVED:
                kept = set(_kept_ids(proposed, arguments["customers"]))
                arguments["customers"] = [c for c in original if c.id in kept]
            else:  # a deleted group or customer takes all its memberships with it
                arguments["customers"] = original
        return call


class ExternalChange:
    """An external change being written piece by piece (:meth:`Service.begin_external_change`):
    its unit of work, open until :meth:`commit` or :meth:`rollback`."""

    def __init__(self, service: ServiceCore, uow: UnitOfWork) -> None:
        self._service = service
        self.uow = uow

    def commit(self, hooks: Sequence[AfterHook], context: Context | None = None) -> None:
        """Commit what was written with the events emitted; ``context`` (when only known at
        the end, like who made the change) replaces the one the change was opened with, for
        the events. Then the commit listeners and ``hooks`` run, as after
        :meth:`Service.apply_external_change`. A failure rolls back (nothing written)."""
        if context is not None:
            self.uow.context = context
        try:
            committed = self.uow.commit()
        finally:
            self.uow.__exit__(None, None, None)
        self._service._tell_listeners(committed)
        for hook in hooks:
            self._service._after(hook.name, **hook.arguments)

    def rollback(self) -> None:
        """Leave nothing written (a no-op once committed or rolled back)."""
        self.uow.__exit__(None, None, None)


UPDATE_KINDS = {f"before_update_{kind.name}": kind for kind in (GROUP_KIND, CUSTOMER_KIND)}
"""The update hooks whose proposed values :meth:`Service.run_before_hook` validates again."""
