"""Smart groups: members that follow a rule, in the transaction of whatever changed them.

A group with a ``rule`` (:mod:`groupwire.domain.rules`) is a smart group. Its members are
``include`` + (the customers the rule matches) - ``exclude``, kept so by the change that
alters the answer, in that change's own transaction:

- a customer created, updated (a field or its metadata), its addresses changed, one of its
  orders recorded, or its membership of another group changed: the rules that read what
  changed are evaluated for that customer (:meth:`SmartGroupSteps._follow_rules`) with the
  Python evaluator over one snapshot; for many customers at once (a bulk membership change)
  with the SQL evaluator over those ids;
- a rule created or edited: every customer, with the SQL evaluator, in chunks of
  :data:`CHUNK` (:meth:`SmartGroupSteps._apply_rule`);
- a rule that reads another group (``groups.id``) follows that group's changes in the same
  transaction (rules are evaluated in dependency order; cycles are refused);
- a rule that reads time: each evaluation also writes the customer's next flip
  (:func:`groupwire.domain.rules.next_flip`, table ``smart_group_flip``; a rule applied to
  everyone starts a sweep instead), and :meth:`SmartGroupSteps.apply_due_flips` decides the
  due ones again with the trigger ``schedule`` (run by
  :class:`groupwire.service.scheduler.FlipScheduler`).

Which rules a change concerns comes from a :class:`RuleIndex` (field -> rules), built from
the parsed rules and kept per service (per process). Each change reads the rules' version
(``outbox_counter.rules_version``, one small read) and rebuilds the index when another
process changed a rule; a rule's change bumps that version first thing under the counter's
lock, and a commit that evaluated an older version is retried
(:class:`groupwire.store.unit_of_work.RulesChanged`): no change decides with a rule that is
no longer the rule.

Joins and leaves are ``customer_group.customer_added`` / ``customer_removed`` with
``reason: "rule"``, the ``rule_version`` and the ``trigger`` (see :data:`TRIGGERS`).
Before-hooks run as for any change and may veto: the customers stay where they were, and a
``customer_group.rule_vetoed`` event records it (``action``: ``add`` or ``remove``, the
customer ids, the veto's message). After-hooks run after the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from groupwire.domain import events as ev
from groupwire.domain.changes import Context
from groupwire.domain.errors import HookRejected, InvalidData, NotFound
from groupwire.domain.models import CustomerGroup
from groupwire.domain.rules import Reason, Rule, explain, next_flip, parse_rule
from groupwire.hooks.plugins import has_impls
from groupwire.service.memberships import MembershipSteps
from groupwire.service.validation import _kept_ids
from groupwire.store import repository as repo
from groupwire.store import smart_groups as store
from groupwire.store.rules import matching_ids
from groupwire.store.unit_of_work import RulesChanged, UnitOfWork, change_rules

log = logging.getLogger("groupwire.smart_groups")

ALL = "*"
"""A change that concerns every rule (a customer created)."""
CHUNK = 5000
"""Customers decided per statement when a rule is evaluated over everyone."""
PYTHON_LIMIT = 200
"""Up to this many customers, rules are decided in Python over snapshots; beyond, in SQL."""
TRIGGERS = (
    "customer_created",
    "customer_updated",
    "address_created",
    "address_updated",
    "address_deleted",
    "order_placed",
    "order_canceled",
    "order_updated",
    "membership_changed",
    "group_deleted",
    "rule_changed",
    "schedule",
)
"""What made a smart group's members change (the events' ``trigger``)."""


@dataclass(frozen=True, slots=True)
class SmartGroup:
    group: CustomerGroup
    rule: Rule


class RuleIndex:
    """The live smart groups' parsed rules of one rules version, and which rules each kind
    of change concerns (``customer.email`` -> the rules reading ``email``, ``group:<id>``
    -> the rules reading that group's membership, ...)."""

    def __init__(self, version: int, groups: Iterable[CustomerGroup]) -> None:
        self.version = version
        self.groups: dict[str, SmartGroup] = {}
        for group in groups:
            try:
                self.groups[group.id] = SmartGroup(group, parse_rule(group.rule))
            except InvalidData as error:  # validated on write: only a hand-edited row
                log.error("smart group %s has an invalid rule, ignored: %s", group.id, error)
        self.readers: dict[str, set[str]] = {}
        self.reads: dict[str, frozenset[str]] = {}
        for gid, smart in self.groups.items():
            self.readers[f"rule:{gid}"] = {gid}  # the group's own rule (a sweep of it)
            self.reads[gid] = smart.rule.dependencies
            for dependency in self.reads[gid]:
                self.readers.setdefault(dependency, set()).add(gid)
        self.order = _dependency_order(
            {gid: smart.rule.group_ids for gid, smart in self.groups.items()}
        )

    def affected(self, touched: Iterable[str]) -> list[str]:
        """The smart groups whose members a change of ``touched`` may change, with those
        reading their membership in turn, in dependency order."""
        touched = set(touched)
        if ALL in touched:
            return list(self.order)
        found = {gid for item in touched for gid in self.readers.get(item, ())}
        pending = list(found)
        while pending:
            for reader in self.readers.get(f"group:{pending.pop()}", ()):
                if reader not in found:
                    found.add(reader)
                    pending.append(reader)
        return [gid for gid in self.order if gid in found]

    def needs(self, group_ids: Iterable[str], dependency: str) -> bool:
        return any(dependency in self.reads[gid] for gid in group_ids)


def _dependency_order(reads: dict[str, frozenset[str]]) -> list[str]:
    """Group ids, each after the smart groups its rule reads (cycles were refused on write;
    one found here is broken by id order)."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(gid: str) -> None:
        if state.get(gid) is not None:
            return
        state[gid] = 1
        for other in sorted(reads.get(gid, ())):
            if other in reads:
                visit(other)
        state[gid] = 2
        order.append(gid)

    for gid in sorted(reads):
        visit(gid)
    return order


def find_cycle(reads: dict[str, frozenset[str]], start: str) -> list[str] | None:
    """A path of groups from ``start`` back to it through ``groups.id`` rules, if any."""
    path: list[str] = []
    seen: set[str] = set()

    def walk(gid: str) -> list[str] | None:
        for other in sorted(reads.get(gid, ())):
            if other == start:
                return [*path, gid, start]
            if other not in seen:
                seen.add(other)
                path.append(gid)
                found = walk(other)
                path.pop()
                if found:
                    return found
        return None

    return walk(start)


@dataclass(slots=True)
class RuleChange:
    """What one smart group's rule did in a change, for the after-hooks."""

    group: CustomerGroup
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RulePreview:
    """Who a rule would bring in and who it would let go, were it the group's rule now."""

    joining: int
    leaving: int
    joining_ids: list[str]
    leaving_ids: list[str]


class SmartGroupSteps(MembershipSteps):
    """The smart groups' steps, run inside a change's transaction."""

    _rule_index: RuleIndex | None = None

    # --- the index ---------------------------------------------------------------------------

    def _rules(self, uow: UnitOfWork) -> RuleIndex:
        """The index of the rules as of this transaction; the commit checks that they are
        still the rules then."""
        conn = uow.connection
        version = store.rules_version(conn)
        index = self._rule_index
        if index is None or index.version != version or uow.changes_rules:
            index = RuleIndex(version, store.smart_groups(conn))
            if not uow.changes_rules:  # never cache what may still roll back
                self._rule_index = index
        uow.expect_rules_version = version
        return index

    # --- following a change ------------------------------------------------------------------

    def _follow_rules(
        self,
        uow: UnitOfWork,
        customer_ids: Sequence[str],
        touched: Iterable[str],
        trigger: str,
        context: Context,
        *,
        no_flips_for: str | None = None,
    ) -> None:
        """Re-decide, for ``customer_ids``, the smart groups whose rules read ``touched``
        (writing no flips for the group ``no_flips_for``: a sweep of it follows)."""
        if not customer_ids:
            return
        index = self._rules(uow)
        affected = index.affected(touched)
        if not affected:
            return
        conn = uow.connection
        ids = sorted(set(customer_ids))
        store.lock_customers(conn, ids)
        if len(ids) <= PYTHON_LIMIT:
            shots = store.snapshots(
                conn,
                ids,
                addresses=index.needs(affected, "addresses"),
                with_orders=index.needs(affected, "orders"),
            )
            groups_of = {cid: set(shot.group_ids) for cid, shot in shots.items()}
            for gid in affected:
                smart = index.groups[gid]
                desired = set()
                for cid, shot in shots.items():
                    if groups_of[cid] != shot.group_ids:
                        shot = type(shot)(
                            shot.customer, shot.addresses, shot.orders, frozenset(groups_of[cid])
                        )
                    if smart.rule.matches(shot, uow.now):
                        desired.add(cid)
                current = {cid for cid in shots if gid in groups_of[cid]}
                change = self._converge(uow, smart, ids, desired, trigger, context, current)
                for cid in change.added:
                    groups_of[cid].add(gid)
                for cid in change.removed:
                    groups_of[cid].discard(gid)
                if "time" in index.reads[gid] and gid != no_flips_for:
                    flips = {}
                    for cid, shot in shots.items():
                        shot = type(shot)(
                            shot.customer, shot.addresses, shot.orders, frozenset(groups_of[cid])
                        )
                        at = next_flip(smart.rule, shot, uow.now)
                        if at is not None:
                            flips[cid] = at
                    self._write_flips(uow, gid, ids, flips)
            return
        for gid in affected:
            smart = index.groups[gid]
            desired = set()
            for part in repo.chunks(ids, CHUNK):
                desired |= matching_ids(conn, smart.rule, uow.now, part)
            self._converge(uow, smart, ids, desired, trigger, context)
            if "time" in index.reads[gid] and gid != no_flips_for:  # the scheduler's to compute
                self._write_flips(uow, gid, ids, dict.fromkeys(ids, uow.now))

    def _write_flips(
        self, uow: UnitOfWork, group_id: str, ids: Sequence[str], flips: dict[str, datetime]
    ) -> None:
        store.write_flips(uow.connection, group_id, ids, flips)
        if flips:
            self._flip_written(uow, min(flips.values()))

    def _flip_written(self, uow: UnitOfWork, at: datetime) -> None:
        """Wake this process's scheduler after the commit when ``at`` is earlier than the
        moment it sleeps until."""
        if uow.earliest_flip is None or at < uow.earliest_flip:
            uow.earliest_flip = at

    # --- the scheduler's work ----------------------------------------------------------------

    def apply_due_flips(self, limit: int = 100, *, context: Context | None = None) -> int:
        """Decide again up to ``limit`` (smart group, customer) pairs whose flip is due, and
        customers of a due sweep, in one transaction (trigger ``schedule``): their members
        move, their next flips are written. Returns how many were claimed (0: none due, or
        all held by others)."""
        context = context or Context(actor="schedule")

        def work(uow: UnitOfWork) -> tuple[None, int]:
            claimed = store.claim_due_flips(uow.connection, uow.now, limit)
            customers = {cid for _, cid in claimed}
            sweep = None
            if len(claimed) < limit:  # then a batch of a rule's sweep, if one is due
                sweep = store.claim_sweep(uow.connection, uow.now, limit - len(claimed))
            if sweep is not None and sweep.trigger == "schedule":
                customers.update(sweep.customer_ids)
            if customers:
                self._follow_rules(uow, sorted(customers), {"time"}, "schedule", context)
            if sweep is not None and sweep.trigger != "schedule":
                self._sweep_rule(uow, sweep, context)
            return None, len(claimed) + (0 if sweep is None else len(sweep.customer_ids))

        return self._transaction(context, work)[1]

    def _sweep_rule(self, uow: UnitOfWork, sweep: store.SweepBatch, context: Context) -> None:
        """Decide a batch of a streamed rule's sweep: its group (and the rules reading that
        group) for those customers, the moves with the sweep's trigger. A rule reading time
        gets its flips from a time sweep started when this one ends (not a row per customer
        written here)."""
        gid = sweep.group_id
        touched = {f"rule:{gid}"}
        self._follow_rules(
            uow, sweep.customer_ids, touched, sweep.trigger, context, no_flips_for=gid
        )
        index = self._rules(uow)
        if sweep.ended and "time" in index.reads.get(gid, ()):
            store.sweep_everyone(uow.connection, gid, uow.now)
            self._flip_written(uow, uow.now)

    def sweep_group(
        self, group_id: str, limit: int = 1000, *, context: Context | None = None
    ) -> int | None:
        """Decide the next ``limit`` customers of the group's sweep in one transaction, due
        or not (what ``groupwire groups set-rule`` runs while it shows its progress). The
        number decided; 0 when another process holds the sweep now; None when the group has
        no sweep left."""
        context = context or Context(actor="schedule")

        def work(uow: UnitOfWork) -> tuple[None, int | None]:
            found = store.sweep_of(uow.connection, group_id)
            size = limit
            if found is not None and found[1] == "schedule":  # each one's flip, in Python
                size = min(limit, PYTHON_LIMIT)
            sweep = store.claim_sweep(uow.connection, uow.now, size, group_id)
            if sweep is None:
                gone = store.sweep_of(uow.connection, group_id) is None
                return None, None if gone else 0
            if sweep.trigger == "schedule":
                ids = sweep.customer_ids
                self._follow_rules(uow, ids, {"time"}, "schedule", context)
            else:
                self._sweep_rule(uow, sweep, context)
            return None, len(sweep.customer_ids)

        return self._transaction(context, work)[1]

    def sweep_progress(self, group_id: str) -> tuple[int, int] | None:
        """``(customers decided, live customers)`` of the group's sweep; None: no sweep."""
        with self.engine.connect() as conn:
            found = store.sweep_of(conn, group_id)
            if found is None:
                return None
            after = found[0]
            done = store.count_live_customers(conn, after) if after else 0
            return done, store.count_live_customers(conn)

    def postpone_due_flip(self, seconds: float) -> str | None:
        """Move the earliest due flip (or sweep) ``seconds`` later: what it was, or None."""
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            return store.postpone_earliest_due(conn, now, now + timedelta(seconds=seconds))

    def next_flip_at(self) -> datetime | None:
        """The earliest flip of all smart groups' customers, if any."""
        with self.engine.connect() as conn:
            return store.earliest_flip(conn)

    def _converge(
        self,
        uow: UnitOfWork,
        smart: SmartGroup,
        ids: Sequence[str],
        desired: set[str],
        trigger: str,
        context: Context,
        current: set[str] | None = None,
    ) -> RuleChange:
        """Move ``ids`` so that ``desired`` are the members among them (``current``: the
        members among them now, when the caller knows)."""
        if current is None:
            current = repo.members_among(uow.connection, smart.group.id, ids)
        joining = [cid for cid in ids if cid in desired and cid not in current]
        leaving = [cid for cid in ids if cid in current and cid not in desired]
        return self._move(uow, smart.group, joining, leaving, trigger, context)

    def _move(
        self,
        uow: UnitOfWork,
        group: CustomerGroup,
        joining: list[str],
        leaving: list[str],
        trigger: str,
        context: Context,
    ) -> RuleChange:
        """Add ``joining`` and remove ``leaving`` as the group's rule asks: before-hooks
        (a veto recorded as ``rule_vetoed``), rows, events, after-hooks queued."""
        change = RuleChange(group)
        if not joining and not leaving:
            return change
        conn = uow.connection
        if not uow.changes_rules:  # wait for a change of this group's rule to commit first
            repo.key_share_group(conn, group.id)
            if store.rules_version(conn) != uow.expect_rules_version:
                raise RulesChanged("a rule changed while this change decided with it")
        version = group.rule_version
        if joining:
            kept, vetoed, message = self._ask(
                self.plugins.hook.before_add_customer_to_group,
                uow,
                joining,
                group=group,
                context=context,
            )
            if vetoed:
                uow.emit(ev.rule_vetoed(group.id, "add", vetoed, message, version, trigger))
            if kept:
                repo.insert_memberships(conn, group.id, kept, uow.now, context.actor)
                uow.emit(ev.rule_customers_added(group.id, kept, uow.now, version, trigger))
            change.added = kept
        if leaving:
            kept, vetoed, message = self._ask(
                self.plugins.hook.before_remove_customer_from_group,
                uow,
                leaving,
                group=group,
                reason=ev.REASON_RULE,
                context=context,
            )
            if vetoed:
                uow.emit(ev.rule_vetoed(group.id, "remove", vetoed, message, version, trigger))
            if kept:
                removed = repo.delete_memberships(conn, group.id, kept)
                kept = [cid for cid in kept if cid in removed]
                uow.emit(ev.rule_customers_removed(group.id, kept, uow.now, version, trigger))
            change.removed = kept
        if change.added or change.removed:
            uow.after_commit.append(lambda: self._after_rule(change, context))
        return change

    def _ask(
        self, hook: Any, uow: UnitOfWork, ids: list[str], **arguments: Any
    ) -> tuple[list[str], list[str], str | None]:
        """``(kept, vetoed, the veto's message)`` of a before-hook over ``ids``."""
        if not has_impls(hook):
            return ids, [], None
        loaded = repo.get_customers(uow.connection, ids)
        customers = [loaded[cid] for cid in ids if cid in loaded]
        try:
            hook(customers=customers, **arguments)
        except HookRejected as veto:
            return [], ids, veto.reason
        kept = _kept_ids(ids, customers)
        kept_set = set(kept)
        return kept, [cid for cid in ids if cid not in kept_set], None

    def _after_rule(self, change: RuleChange, context: Context) -> None:
        if change.added:
            self._after(
                "after_add_customer_to_group",
                group=change.group,
                customer_ids=change.added,
                context=context,
            )
        if change.removed:
            self._after(
                "after_remove_customer_from_group",
                group=change.group,
                customer_ids=change.removed,
                reason=ev.REASON_RULE,
                context=context,
            )

    # --- a rule set, changed or dropped ------------------------------------------------------

    def _check_rule(self, uow: UnitOfWork, group_id: str, rule: Rule | None) -> None:
        """Refuse a rule naming unknown groups or closing a cycle of ``groups.id`` rules."""
        if rule is None:
            return
        named = rule.group_ids
        if group_id in named:
            raise InvalidData("rule.groups.id: a group's rule cannot read its own members")
        if named:
            unknown = sorted(gid for gid in named if repo.get_group(uow.connection, gid) is None)
            if unknown:
                raise InvalidData(f"rule.groups.id: unknown customer groups: {', '.join(unknown)}")
        reads = {g.id: parse_rule(g.rule).group_ids for g in store.smart_groups(uow.connection)}
        reads[group_id] = named
        cycle = find_cycle(reads, group_id)
        if cycle:
            raise InvalidData(
                f"rule.groups.id: the rules would read each other: {' -> '.join(cycle)}"
            )

    def _rules_changing(self, uow: UnitOfWork) -> None:
        """Call first in a change that sets, edits or drops a rule (see the module)."""
        change_rules(uow.connection)
        uow.changes_rules = True

    def _apply_rule(
        self, uow: UnitOfWork, group: CustomerGroup, rule: Rule, trigger: str, context: Context
    ) -> RuleChange:
        """Make the group's members what ``rule`` says, over every customer, in chunks; the
        rules reading this group follow for the customers that moved. A change saved with
        ``stream`` (``uow.stream_rule``) starts a sweep instead: the scheduler (or
        :meth:`sweep_group`) applies it after the commit, a committed batch at a time."""
        conn = uow.connection
        total = RuleChange(group)
        if uow.stream_rule:
            store.sweep_everyone(conn, group.id, uow.now, trigger)
            self._flip_written(uow, uow.now)
            return total
        after = ""
        while True:
            ids = store.joining_ids(conn, group.id, rule, uow.now, after, CHUNK)
            if not ids:
                break
            total.added += self._move(uow, group, ids, [], trigger, context).added
            after = ids[-1]
        after = ""
        while True:
            ids = store.leaving_ids(conn, group.id, rule, uow.now, after, CHUNK)
            if not ids:
                break
            total.removed += self._move(uow, group, [], ids, trigger, context).removed
            after = ids[-1]
        moved = total.added + total.removed
        if moved:
            self._follow_rules(uow, moved, {f"group:{group.id}"}, trigger, context)
        if "time" in rule.dependencies:  # everyone is decided again soon, then at each flip
            store.sweep_everyone(conn, group.id, uow.now)
            self._flip_written(uow, uow.now)
        else:
            store.drop_flips(conn, group.id)
        return total

    def _preview(
        self, conn: Any, group_id: str, rule: Rule, now: datetime, limit: int
    ) -> RulePreview:
        return RulePreview(
            joining=store.count_joining(conn, group_id, rule, now),
            leaving=store.count_leaving(conn, group_id, rule, now),
            joining_ids=store.joining_ids(conn, group_id, rule, now, "", limit),
            leaving_ids=store.leaving_ids(conn, group_id, rule, now, "", limit),
        )


class SmartGroupOperations(SmartGroupSteps):
    """What smart groups add to the operations: the preview of a rule."""

    def preview_rule(self, group_id: str, rule: Any, *, limit: int = 20) -> RulePreview:
        """Who would join and who would leave the group were ``rule`` its rule now (counts
        and the first ``limit`` ids of each, in id order); nothing is written. ``rule``
        None: nobody would move (the group would become manual)."""
        parsed = parse_group_rule(rule)
        if not 0 <= limit <= 1000:
            raise InvalidData("limit must be between 0 and 1000")
        with self.engine.connect() as conn:
            group = repo.get_group(conn, group_id)
            if group is None:
                raise not_found(group_id)
            if parsed is None:
                return RulePreview(0, 0, [], [])
            named = parsed.group_ids
            if group_id in named:
                raise InvalidData("rule.groups.id: a group's rule cannot read its own members")
            return self._preview(conn, group_id, parsed, datetime.now(UTC), limit)

    def explain_members(
        self, group_id: str, customer_ids: Sequence[str]
    ) -> dict[str, list[Reason]]:
        """Why each of ``customer_ids`` is in the smart group now: the ``include`` list or
        the rule's top-level clauses that hold for it (:func:`~groupwire.domain.rules.explain`
        over its snapshot); an empty list for a customer the rule would not keep (a veto
        kept it in, or a time condition passed since its last change). A manual group: {}."""
        with self.engine.connect() as conn:
            group = repo.get_group(conn, group_id)
            if group is None:
                raise not_found(group_id)
            if group.rule is None or not customer_ids:
                return {}
            rule = parse_rule(group.rule)
            shots = store.snapshots(
                conn,
                list(customer_ids),
                addresses="addresses" in rule.dependencies,
                with_orders="orders" in rule.dependencies,
            )
        now = datetime.now(UTC)
        return {cid: explain(rule, shot, now) for cid, shot in shots.items()}

    def next_flips(self, group_id: str, *, limit: int = 20) -> list[tuple[str, datetime]]:
        """The group's next scheduled flips, earliest first: ``(customer_id, when)``, the
        moment that customer is decided again by the scheduler (its membership may then
        change; see docs/smart-groups.md)."""
        if not 0 <= limit <= 1000:
            raise InvalidData("limit must be between 0 and 1000")
        with self.engine.connect() as conn:
            if repo.get_group(conn, group_id) is None:
                raise not_found(group_id)
            return list(store.flips_of(conn, group_id, limit).items())


def parse_group_rule(rule: Any) -> Rule | None:
    """A group's ``rule`` field validated (None: a manual group)."""
    return None if rule is None else parse_rule(rule)


def not_found(group_id: str) -> NotFound:
    return NotFound("customer_group", group_id)
