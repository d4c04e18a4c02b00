"""The update shared by groups and customers.

Some fields of one group or customer change: metadata is merged (:func:`merge_metadata`),
equal values are dropped, and an update that changes nothing writes and emits nothing. What
differs between the two (table, fields, the unique field, validation, events) is a
:class:`_Kind`, declared next to each aggregate's operations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from sqlalchemy import Connection, Table

from groupwire.domain import events as ev
from groupwire.domain.changes import Context, ProposedUpdate
from groupwire.domain.errors import Duplicate, NotFound
from groupwire.hooks.plugins import has_impls
from groupwire.service.core import ServiceCore, _unique_violation
from groupwire.service.validation import _check_metadata_size, _check_version
from groupwire.store import repository as repo
from groupwire.store.unit_of_work import UnitOfWork

T = TypeVar("T")

UNSET: Any = object()
"""Marks an update argument that was not given (``None`` means "set to null")."""


def merge_metadata(
    current: dict[str, Any] | None, patch: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Medusa's metadata update: keys in ``patch`` are set, a key set to "" is removed;
    ``None`` clears the metadata."""
    if patch is None:
        return None
    merged = dict(current or {})
    for key, value in patch.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    if not merged and current is None:
        return None
    return merged


@dataclass(frozen=True)
class _Kind:
    """What differs between updating a group and updating a customer."""

    name: str  # also names the hooks: before_update_<name>, after_update_<name>
    hook_arg: str
    table: Table
    fields: tuple[str, ...]
    unique: str  # the field whose new value must not be taken (None is never taken)
    get: Callable[..., Any]
    taken: Callable[[Connection, Any, Any], bool]  # (conn, current entity, new value)
    duplicate: Callable[[Any, Any], Duplicate]  # the error naming the taken key
    validate: Callable[[dict[str, Any]], None]
    normalise: Callable[[dict[str, Any]], dict[str, Any]]
    updated_event: Callable[[str, dict[str, dict[str, Any]]], ev.PendingEvent]
    metadata_event: Callable[[str, dict[str, Any]], ev.PendingEvent] | None
    # (service, uow, current, changes, row): before the row is written; may add to both
    prepare: Callable[..., None] | None = None
    # (service, uow, updated, changes, context): after the row and its events
    written: Callable[..., None] | None = None


class EntityUpdates(ServiceCore):
    """The field update of a group or a customer, in its own transaction."""

    def _update(
        self,
        kind: _Kind,
        entity_id: str,
        given: dict[str, Any],
        expected_version: int | None,
        context: Context | None,
        *,
        stream_rule: bool = False,
    ) -> Any:
        """Update some fields of a group or customer: metadata is merged, equal values are
        dropped, and a change that changes nothing writes and emits nothing (``stream_rule``:
        a group's new rule is applied by a sweep after the commit)."""
        context = self._keyed(
            context,
            f"update_{kind.name}",
            id=entity_id,
            values=given,
            expected_version=expected_version,
        )
        kind.validate(given)
        before_hook = getattr(self.plugins.hook, f"before_update_{kind.name}")

        def work(uow: UnitOfWork) -> tuple[Any, dict[str, dict[str, Any]]]:
            conn = uow.connection
            uow.stream_rule = stream_rule
            current = kind.get(conn, entity_id, lock=True)
            if current is None:
                raise NotFound(kind.name, entity_id)
            _check_version(kind.name, current.id, current.version, expected_version)
            values: dict[str, Any] = dict(given)
            if "metadata" in values:
                values["metadata"] = merge_metadata(current.metadata, values["metadata"])
                _check_metadata_size(values["metadata"])
            update = ProposedUpdate(values=kind.normalise(values))
            if has_impls(before_hook):
                before_hook(**{kind.hook_arg: current, "update": update, "context": context})
                kind.validate(update.values)
                update.values = kind.normalise(update.values)
            changes = _changes(current, update.values, kind.fields)
            if not changes:
                return current, {}
            unique = changes.get(kind.unique, {}).get("new")
            duplicate = kind.duplicate(current, unique)
            if unique is not None and kind.taken(conn, current, unique):
                raise duplicate
            row = {
                **{name: change["new"] for name, change in changes.items()},
                "updated_at": uow.now,
                "version": current.version + 1,
            }
            if kind.prepare is not None:
                kind.prepare(self, uow, current, changes, row)
            with _unique_violation(duplicate):
                repo.update_row(conn, kind.table, current.id, row)
            updated = _replace(current, row)
            uow.emit(kind.updated_event(current.id, changes))
            if kind.metadata_event is not None and "metadata" in changes:
                diff = ev.metadata_diff(current.metadata, updated.metadata)
                if diff:
                    uow.emit(kind.metadata_event(current.id, diff))
            if kind.written is not None:
                kind.written(self, uow, updated, changes, context)
            return updated, changes

        entity, changes = self._transaction(context, work)
        if changes:
            self._after(
                f"after_update_{kind.name}",
                **{kind.hook_arg: entity, "changes": changes, "context": context},
            )
        return entity


def _changes(
    current: Any, values: dict[str, Any], fields: Sequence[str]
) -> dict[str, dict[str, Any]]:
    return {
        name: {"old": getattr(current, name), "new": values[name]}
        for name in fields
        if name in values and values[name] != getattr(current, name)
    }


def _replace(entity: T, values: dict[str, Any]) -> T:
    return replace(entity, **values)  # type: ignore[type-var]
