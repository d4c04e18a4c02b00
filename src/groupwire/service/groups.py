"""Customer groups: create, update (fields, metadata merged) and soft-delete (each member
leaves the group first)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection

from groupwire.domain import events as ev
from groupwire.domain.changes import Context, GroupDraft
from groupwire.domain.errors import Duplicate, NotFound
from groupwire.domain.ids import CUSTOMER_GROUP, new_id
from groupwire.domain.models import CustomerGroup
from groupwire.service.core import _unique_violation
from groupwire.service.smart_groups import SmartGroupSteps, parse_group_rule
from groupwire.service.updates import UNSET, EntityUpdates, _Kind, _replace
from groupwire.service.validation import (
    _check_version,
    _validate_group_draft,
    _validate_group_fields,
)
from groupwire.store import repository as repo
from groupwire.store import smart_groups as store
from groupwire.store import tables
from groupwire.store.unit_of_work import UnitOfWork


class GroupOperations(EntityUpdates, SmartGroupSteps):
    """Changes of customer groups."""

    def create_group(
        self,
        name: str,
        *,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        rule: dict[str, Any] | None = None,
        stream_rule: bool = False,
        context: Context | None = None,
    ) -> CustomerGroup:
        """Create a group; with a ``rule``, a smart group whose members follow it at once
        (``docs/smart-groups.md``; ``stream_rule``: in committed batches after the commit,
        by a sweep)."""
        arguments = {"name": name, "description": description, "metadata": metadata}
        if rule is not None:
            arguments["rule"] = rule
        context = self._keyed(context, "create_group", **arguments)
        draft = GroupDraft(name=name, description=description, metadata=metadata, rule=rule)
        _validate_group_draft(draft)
        parse_group_rule(draft.rule)

        def work(uow: UnitOfWork) -> CustomerGroup:
            uow.stream_rule = stream_rule
            self.plugins.hook.before_create_customer_group(draft=draft, context=context)
            _validate_group_draft(draft)
            parsed = parse_group_rule(draft.rule)
            if parsed is not None:
                self._rules_changing(uow)
            if repo.group_name_taken(uow.connection, draft.name):
                raise Duplicate("customer_group", "name", draft.name)
            group = CustomerGroup(
                id=new_id(CUSTOMER_GROUP),
                name=draft.name,
                description=draft.description,
                metadata=draft.metadata,
                created_by=context.actor,
                created_at=uow.now,
                updated_at=uow.now,
                rule=draft.rule,
                rule_version=0 if parsed is None else 1,
            )
            if parsed is not None:
                self._check_rule(uow, group.id, parsed)
            with _unique_violation(Duplicate("customer_group", "name", draft.name)):
                repo.insert_group(uow.connection, _group_row(group))
            uow.emit(ev.group_created(group))
            if parsed is not None:
                self._apply_rule(uow, group, parsed, "rule_changed", context)
            return group

        group = self._transaction(context, work)
        self._after("after_create_customer_group", group=group, context=context)
        return group

    def update_group(
        self,
        group_id: str,
        *,
        name: str = UNSET,
        description: str | None = UNSET,
        metadata: dict[str, Any] | None = UNSET,
        rule: dict[str, Any] | None = UNSET,
        expected_version: int | None = None,
        stream_rule: bool = False,
        context: Context | None = None,
    ) -> CustomerGroup:
        """Update fields; ``metadata`` is merged (keys set, a key set to "" removed). A new
        ``rule`` is applied to every customer in the same transaction (``stream_rule``: by a
        sweep after the commit, a committed batch at a time); ``rule=None`` makes the group
        manual again (its members stay)."""
        given = {"name": name, "description": description, "metadata": metadata, "rule": rule}
        given = {k: v for k, v in given.items() if v is not UNSET}
        return self._update(
            GROUP_KIND, group_id, given, expected_version, context, stream_rule=stream_rule
        )

    def delete_group(
        self,
        group_id: str,
        *,
        expected_version: int | None = None,
        context: Context | None = None,
    ) -> CustomerGroup:
        """Soft-delete a group; each member leaves it first (reason ``group_deleted``)."""
        context = self._keyed(
            context, "delete_group", id=group_id, expected_version=expected_version
        )

        def work(uow: UnitOfWork) -> tuple[CustomerGroup, list[str]]:
            conn = uow.connection
            group = repo.get_group(conn, group_id, lock=True)
            if group is None:
                raise NotFound("customer_group", group_id)
            _check_version("customer_group", group.id, group.version, expected_version)
            self.plugins.hook.before_delete_customer_group(group=group, context=context)
            if group.smart:
                self._rules_changing(uow)
                store.drop_flips(conn, group.id)  # nothing left to schedule
            members = repo.member_ids(conn, group.id)
            removed = self._remove_members(
                uow, group, members, ev.REASON_GROUP_DELETED, context, may_filter=False
            )
            row = {"deleted_at": uow.now, "updated_at": uow.now, "version": group.version + 1}
            repo.update_row(conn, tables.customer_group, group.id, row)
            uow.emit(ev.group_deleted(group, len(removed)))
            self._follow_rules(uow, removed, {f"group:{group.id}"}, "group_deleted", context)
            return _replace(group, row), removed

        group, removed = self._transaction(context, work)
        if removed:
            self._after(
                "after_remove_customer_from_group",
                group=group,
                customer_ids=removed,
                reason=ev.REASON_GROUP_DELETED,
                context=context,
            )
        self._after(
            "after_delete_customer_group",
            group=group,
            removed_customer_ids=removed,
            context=context,
        )
        return group


def _group_row(group: CustomerGroup) -> dict[str, Any]:
    return asdict(group)


def _group_name_taken(conn: Connection, current: CustomerGroup, name: str) -> bool:
    return repo.group_name_taken(conn, name, except_id=current.id)


def _prepare_rule(
    service: SmartGroupSteps,
    uow: UnitOfWork,
    current: CustomerGroup,
    changes: dict[str, dict[str, Any]],
    row: dict[str, Any],
) -> None:
    """A changed rule: checked (groups it reads, cycles), its version counted on, and the
    rules' version bumped before anything is evaluated."""
    if "rule" not in changes:
        return
    service._rules_changing(uow)
    service._check_rule(uow, current.id, parse_group_rule(changes["rule"]["new"]))
    version = {"old": current.rule_version, "new": current.rule_version + 1}
    changes["rule_version"] = version
    row["rule_version"] = version["new"]


def _apply_changed_rule(
    service: SmartGroupSteps,
    uow: UnitOfWork,
    group: CustomerGroup,
    changes: dict[str, dict[str, Any]],
    context: Context,
) -> None:
    if "rule" not in changes:
        return
    rule = parse_group_rule(group.rule)
    if rule is not None:
        service._apply_rule(uow, group, rule, "rule_changed", context)
    else:
        store.drop_flips(uow.connection, group.id)  # a manual group has no time flips


def _validate_group_update(values: dict[str, Any]) -> None:
    _validate_group_fields(values)
    if "rule" in values:
        parse_group_rule(values["rule"])


GROUP_KIND = _Kind(
    name="customer_group",
    hook_arg="group",
    table=tables.customer_group,
    fields=(*ev.GROUP_FIELDS, "rule"),
    unique="name",
    get=repo.get_group,
    taken=_group_name_taken,
    duplicate=lambda current, name: Duplicate("customer_group", "name", name),
    validate=_validate_group_update,
    normalise=lambda values: values,
    updated_event=ev.group_updated,
    metadata_event=ev.group_metadata_updated,
    prepare=_prepare_rule,
    written=_apply_changed_rule,
)
