"""Vetting one of the five writes: the hook calls Groupwire's own operation would make, built
from the write's body and Groupwire's copy of Medusa, run, and what is forwarded after them
(the body the hooks left; a veto raises). Runs in a worker thread: the store and the hooks are
synchronous.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from groupwire.domain import events as ev
from groupwire.domain.changes import Context, GroupDraft, ProposedUpdate
from groupwire.domain.errors import InvalidData, NotAllowed
from groupwire.domain.models import CustomerGroup
from groupwire.medusa.smart_groups import get_rule
from groupwire.service import BeforeHook, Service, merge_metadata
from groupwire.store import repository as repo


class CopyLacks(Exception):
    """Rows the hooks need are not in Groupwire's copy (yet): ``kind`` is ``customer_group``
    or ``customer``."""

    def __init__(self, kind: str, ids: list[str]) -> None:
        super().__init__(f"{kind} {', '.join(ids)} not in the copy")
        self.kind = kind
        self.ids = ids


class ForwardUntouched(Exception):
    """Medusa answers this write itself (it refuses it whole): send it on as it came."""


@dataclass(slots=True)
class Vetted:
    """A write the hooks let through: ``body`` the body to forward (None: the original)."""

    body: dict[str, Any] | None


class Vetter:
    """Runs the before-hooks of the five writes with ``service``'s plugins, on its store."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def vet(
        self,
        route: str,
        id: str,
        body: dict[str, Any],
        context: Context,
        absent: frozenset[str],
    ) -> Vetted:
        """Build the hook calls of one write from its body and the copy, run them, and say
        what to forward (in a worker thread: the store and the hooks are synchronous).

        Ids that ``absent`` holds are known to be unknown to Medusa: the group or customer
        of the path (and a group or customer to add) makes Medusa refuse the whole request
        (``ForwardUntouched``); one to remove is no member, skipped as Groupwire skips it.
        """
        with self.service.engine.connect() as conn:
            if route == "create_group":
                return self._create(body, context)
            if route == "customer_groups":
                return self._customer_groups(conn, id, body, context, absent)
            group = repo.get_group(conn, id)
            if group is None:
                if id in absent:
                    raise ForwardUntouched
                raise CopyLacks("customer_group", [id])
            if route == "update_group":
                return self._update(group, body, context)
            if route == "delete_group":
                return self._delete(conn, group, context)
            return self._group_customers(conn, group, body, context, absent)

    def _run(self, name: str, context: Context, **arguments: Any) -> dict[str, Any]:
        return self.service.run_before_hook(BeforeHook(name, arguments), context=context).arguments

    def _create(self, body: dict[str, Any], context: Context) -> Vetted:
        name, metadata = body.get("name"), body.get("metadata")
        description = body.get("description")
        if not isinstance(name, str) or not isinstance(metadata, dict | None):
            raise ForwardUntouched  # Medusa's validation answers
        if not isinstance(description, str | None):
            raise ForwardUntouched
        draft = GroupDraft(name=name, description=description, metadata=metadata)
        before = (draft.name, draft.description, _copy(draft.metadata))
        try:
            self._run("before_create_customer_group", context, draft=draft)
        except InvalidData:
            if (draft.name, draft.description, draft.metadata) == before:
                raise ForwardUntouched from None  # the caller's own input: Medusa answers
            raise
        forwarded = _without_additional_data(body)
        for name_, value, old in zip(
            ("name", "description", "metadata"),
            (draft.name, draft.description, draft.metadata),
            before,
            strict=True,
        ):
            if value != old:
                forwarded[name_] = value
        return Vetted(forwarded)

    def _update(self, group: CustomerGroup, body: dict[str, Any], context: Context) -> Vetted:
        given = {k: body[k] for k in ev.GROUP_FIELDS if k in body}
        if "name" in given and not isinstance(given["name"], str):
            raise ForwardUntouched
        if not isinstance(given.get("metadata"), dict | None):
            raise ForwardUntouched
        values = dict(given)
        if "metadata" in values:
            values["metadata"] = merge_metadata(group.metadata, values["metadata"])
        update = ProposedUpdate(values=_copy(values))
        try:
            self._run("before_update_customer_group", context, group=group, update=update)
        except InvalidData:
            if update.values == values:
                raise ForwardUntouched from None
            raise
        forwarded = _without_additional_data(body)
        for name in ev.GROUP_FIELDS:
            if name not in update.values:
                forwarded.pop(name, None)
            elif name not in values or update.values[name] != values[name]:
                new = update.values[name]
                forwarded[name] = (
                    _metadata_patch(group.metadata, new)
                    if name == "metadata" and new is not None
                    else new
                )
        return Vetted(forwarded)

    def _delete(self, conn: Any, group: CustomerGroup, context: Context) -> Vetted:
        self._run("before_delete_customer_group", context, group=group)
        members = repo.member_ids(conn, group.id)
        if members:
            loaded = repo.get_customers(conn, members)
            self._run(
                "before_remove_customer_from_group",
                context,
                group=group,
                customers=[loaded[cid] for cid in members if cid in loaded],
                reason=ev.REASON_GROUP_DELETED,
            )
        return Vetted(None)

    def _group_customers(
        self,
        conn: Any,
        group: CustomerGroup,
        body: dict[str, Any],
        context: Context,
        absent: frozenset[str],
    ) -> Vetted:
        add, remove = _ids(body, "add"), _ids(body, "remove")
        if add is None or remove is None or set(add) & set(remove):
            raise ForwardUntouched
        if (add or remove) and get_rule(conn, group.id) is not None:
            # its reconciler posts to Medusa itself, not through the gateway
            raise NotAllowed(
                f"Customer group {group.name} ({group.id}) is a smart group: its members follow"
                " its rule. Change the rule, or its include and exclude lists"
            )
        dropped: set[str] = set()
        present = repo.members_among(conn, group.id, add + remove)
        joining = [cid for cid in add if cid not in present]
        if joining:
            loaded = repo.get_customers(conn, joining)
            missing = [cid for cid in joining if cid not in loaded]
            if any(cid in absent for cid in missing):
                raise ForwardUntouched  # Medusa refuses the whole batch
            if missing:
                raise CopyLacks("customer", missing)
            kept = self._run(
                "before_add_customer_to_group",
                context,
                group=group,
                customers=[loaded[cid] for cid in joining],
            )["customers"]
            dropped |= set(joining) - {c.id for c in kept}
        unknown = [cid for cid in remove if cid not in absent]
        if unknown:
            loaded_removed = repo.get_customers(conn, unknown)
            missing = [cid for cid in unknown if cid not in loaded_removed]
            if missing:
                raise CopyLacks("customer", missing)
        leaving = [cid for cid in remove if cid in present]
        if leaving:
            loaded = repo.get_customers(conn, leaving)
            kept = self._run(
                "before_remove_customer_from_group",
                context,
                group=group,
                customers=[loaded[cid] for cid in leaving if cid in loaded],
                reason=ev.REASON_REMOVED,
            )["customers"]
            dropped |= set(leaving) - {c.id for c in kept}
        return Vetted(_batch(body, add, remove, dropped))

    def _customer_groups(
        self,
        conn: Any,
        customer_id: str,
        body: dict[str, Any],
        context: Context,
        absent: frozenset[str],
    ) -> Vetted:
        add, remove = _ids(body, "add"), _ids(body, "remove")
        if add is None or remove is None or set(add) & set(remove):
            raise ForwardUntouched
        for gid in add + remove:
            if get_rule(conn, gid) is not None:
                raise NotAllowed(
                    f"Customer group {gid} is a smart group: its members follow its rule."
                    " Change the rule, or its include and exclude lists"
                )
        customer = repo.get_customer(conn, customer_id)
        if customer is None:
            if customer_id in absent:
                raise ForwardUntouched
            raise CopyLacks("customer", [customer_id])
        groups = _groups(conn, add + remove)
        missing = [gid for gid in add + remove if gid not in groups and gid not in absent]
        if missing:
            raise CopyLacks("customer_group", missing)
        if any(gid in absent for gid in add):
            raise ForwardUntouched  # Medusa refuses the whole request
        current = set(repo.group_ids_of(conn, customer.id))
        dropped: set[str] = set()
        for gid in sorted(set(add + remove) - set(absent)):
            group = groups[gid]
            if gid in add and gid not in current:
                hook, reason = "before_add_customer_to_group", {}
            elif gid in remove and gid in current:
                hook, reason = "before_remove_customer_from_group", {"reason": ev.REASON_REMOVED}
            else:
                continue
            kept = self._run(hook, context, group=group, customers=[customer], **reason)
            if not kept["customers"]:
                dropped.add(gid)
        return Vetted(_batch(body, add, remove, dropped))


def _additional_data(body: dict[str, Any]) -> dict[str, Any] | None:
    data = body.get("additional_data")
    return data if isinstance(data, dict) else None


def _without_additional_data(body: dict[str, Any]) -> dict[str, Any]:
    """Medusa refuses ``additional_data`` on these routes; Groupwire hands it to the hooks."""
    return {k: v for k, v in body.items() if k != "additional_data"}


def _ids(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(i, str) and i for i in value):
        return None
    return list(dict.fromkeys(value))


def _batch(
    body: dict[str, Any], add: list[str], remove: list[str], dropped: set[str]
) -> dict[str, Any]:
    forwarded = _without_additional_data(body)
    if dropped:
        for name in ("add", "remove"):
            if name in forwarded:
                forwarded[name] = [i for i in forwarded[name] if i not in dropped]
    return forwarded


def _groups(conn: Any, ids: list[str]) -> dict[str, CustomerGroup]:
    found: dict[str, CustomerGroup] = {}
    for gid in dict.fromkeys(ids):
        group = repo.get_group(conn, gid)
        if group is not None:
            found[gid] = group
    return found


def _metadata_patch(current: dict[str, Any] | None, wanted: dict[str, Any]) -> dict[str, Any]:
    """The body's metadata that turns ``current`` into ``wanted`` under Medusa's merge (keys
    set, a key set to "" removed)."""
    patch = {k: v for k, v in wanted.items() if (current or {}).get(k, _MISSING) != v}
    patch.update({k: "" for k in (current or {}) if k not in wanted})
    return patch


_MISSING = object()


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value)) if value is not None else None
