"""Pages for customer groups: the searchable list, and one group with its members and chart.

Every change is one facade call (``gw.groups``), made with the signed-in key as the actor,
exactly as the Admin API's routes make it; these routes only translate forms to calls.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from groupwire.api.errors import ApiError, status_of
from groupwire.domain.errors import GroupwireError, InvalidData, PreconditionFailed
from groupwire.service import UNSET
from groupwire.ui.paste import customers_by_email, parse_emails
from groupwire.ui.sessions import Session
from groupwire.ui.web import (
    PREFIX,
    Form,
    UiRoute,
    context_of,
    gw_of,
    json_text,
    need,
    posted_form,
    redirect,
    render,
    session_of,
)

router = APIRouter(prefix=f"{PREFIX}/groups", route_class=UiRoute, include_in_schema=False)
PAGE_SIZE = 50
PREVIEW_LIMIT = 20
Signed = Annotated[Session, Depends(session_of)]
Posted = Annotated[Form, Depends(posted_form)]


def offset_of(value: str | int | None) -> int:
    try:
        return max(0, min(int(value or 0), 1_000_000))
    except ValueError:
        return 0


@router.get("")
def list_groups(request: Request, session: Signed, q: str = "", offset: str = "") -> Response:
    return _list_page(request, q=q.strip(), offset=offset_of(offset))


def _list_page(
    request: Request,
    *,
    q: str = "",
    offset: int = 0,
    status_code: int = 200,
    error: GroupwireError | None = None,
    form: Form | None = None,
) -> Response:
    page = gw_of(request).groups.list(q=q or None, limit=PAGE_SIZE, offset=offset, order="name")
    return render(
        request,
        "groups.html",
        status_code=status_code,
        error=error,
        nav="groups",
        q=q,
        page=page,
        form=form or Form(),
    )


@router.post("")
def create_group(request: Request, session: Signed, form: Posted) -> Response:
    need(session, "write")
    try:
        group = gw_of(request).groups.create(
            form.get("name").strip(),
            description=form.get("description").strip() or None,
            context=context_of(request, session),
        )
    except GroupwireError as error:
        return _list_page(request, status_code=status_of(error), error=error, form=form)
    return redirect(f"/groups/{group.id}", notice=f"Group “{group.name}” created.")


@router.get("/{group_id}")
def show_group(
    request: Request, session: Signed, group_id: str, q: str = "", offset: str = ""
) -> Response:
    return _group_page(request, group_id, q=q.strip(), offset=offset_of(offset))


def _group_page(
    request: Request,
    group_id: str,
    *,
    q: str = "",
    offset: int = 0,
    status_code: int = 200,
    error: GroupwireError | None = None,
    edit: Form | None = None,
    paste: str = "",
    unknown: list[str] | None = None,
    invalid: list[str] | None = None,
    rule_text: str | None = None,
    preview: dict[str, Any] | None = None,
) -> Response:
    gw = gw_of(request)
    group = gw.groups.get(group_id)
    members = gw.customers.list(
        group_ids=[group.id], q=q or None, limit=PAGE_SIZE, offset=offset, order="email"
    )
    reasons = gw.groups.explain_members(group.id, [c.id for c in members.items])
    flips = gw.groups.next_flips(group.id) if group.rule is not None else []
    trail = gw.events.list(subject=group.id, limit=15, descending=True)
    return render(
        request,
        "group.html",
        status_code=status_code,
        error=error,
        nav="groups",
        group=group,
        members=members,
        q=q,
        trail=trail,
        edit=edit,
        paste=paste,
        unknown=unknown or [],
        invalid=invalid or [],
        reasons=reasons,
        flips=flips,
        rule_text=json_text(group.rule) if rule_text is None else rule_text,
        preview=preview,
    )


@router.post("/{group_id}")
def update_group(request: Request, session: Signed, group_id: str, form: Posted) -> Response:
    need(session, "write")
    gw = gw_of(request)
    try:
        current = gw.groups.get(group_id)
        changes: dict[str, Any] = {
            "name": form.get("name").strip(),
            "description": form.get("description").strip() or None,
        }
        patch = metadata_patch(current.metadata, form.get("metadata"))
        if patch is not UNSET:
            changes["metadata"] = patch
        version = form.get("version")
        group = gw.groups.update(
            group_id,
            expected_version=int(version) if version.isdigit() else None,
            context=context_of(request, session),
            **changes,
        )
    except PreconditionFailed:
        stale = ApiError(
            "precondition_failed",
            "Someone changed this group after you opened it: nothing was saved. "
            "Reload the page to see their change, then edit again.",
        )
        return _group_page(request, group_id, status_code=412, error=stale, edit=form)
    except GroupwireError as error:
        return _group_page(request, group_id, status_code=status_of(error), error=error, edit=form)
    return redirect(f"/groups/{group.id}", notice="Group saved.")


@router.post("/{group_id}/rule")
def save_rule(request: Request, session: Signed, group_id: str, form: Posted) -> Response:
    """The rule form: ``action=preview`` shows who would join and leave (nothing written),
    ``action=save`` sets the rule (empty or ``null``: the group is manual again)."""
    gw = gw_of(request)
    text = form.get("rule")
    try:
        if form.get("action") == "preview":
            return _preview_page(request, group_id, text)
        need(session, "write")
        rule = rule_of(text)
        current = gw.groups.get(group_id)
        if rule is None and not current.smart:
            raise InvalidData("Write a rule to make this group smart: it has none to remove")
        version = form.get("version")
        group = gw.groups.update(
            group_id,
            rule=rule,
            expected_version=int(version) if version.isdigit() else None,
            context=context_of(request, session),
        )
    except PreconditionFailed:
        stale = ApiError(
            "precondition_failed",
            "Someone changed this group after you opened it: nothing was saved. "
            "Reload the page to see their change, then edit again.",
        )
        return _group_page(request, group_id, status_code=412, error=stale, rule_text=text)
    except GroupwireError as error:
        return _group_page(
            request, group_id, status_code=status_of(error), error=error, rule_text=text
        )
    if group.rule is None:
        notice = "Rule removed: the group is manual again; its members stay."
    else:
        notice = f"Rule saved (version {group.rule_version}); members follow it now."
    return redirect(f"/groups/{group.id}", notice=notice)


def _preview_page(request: Request, group_id: str, text: str) -> Response:
    """The group's page with the typed rule kept and the preview of it shown."""
    gw = gw_of(request)
    result = gw.groups.preview_rule(group_id, rule_of(text), limit=PREVIEW_LIMIT)
    ids = [*result.joining_ids, *result.leaving_ids]
    found = {c.id: c for c in gw.customers.list(ids=ids, limit=len(ids)).items} if ids else {}
    preview = {
        "joining": result.joining,
        "leaving": result.leaving,
        "joining_customers": [found.get(cid) or cid for cid in result.joining_ids],
        "leaving_customers": [found.get(cid) or cid for cid in result.leaving_ids],
    }
    return _group_page(request, group_id, rule_text=text, preview=preview)


def rule_of(text: str) -> Any:
    """The rule typed in the form: JSON (validated by the service), None when empty or
    ``null``."""
    text = text.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidData(f"Rule is not valid JSON: {error.msg} (line {error.lineno})") from None


def metadata_patch(current: dict[str, Any] | None, edited_text: str) -> Any:
    """The Medusa-style metadata update that turns ``current`` into the edited JSON object.

    Keys whose value changed are set, keys left out are removed (sent as ""), an empty box
    clears the metadata; ``UNSET`` when nothing changed.
    """
    text = edited_text.strip()
    try:
        edited = json.loads(text) if text else {}
    except json.JSONDecodeError as error:
        raise InvalidData(
            f"Metadata is not valid JSON: {error.msg} (line {error.lineno})"
        ) from None
    if not isinstance(edited, dict):
        raise InvalidData('Metadata must be a JSON object, like {"tier": "gold"}')
    current = current or {}
    if edited == current:
        return UNSET
    if not edited:
        return None
    patch = {key: value for key, value in edited.items() if current.get(key) != value}
    patch.update({key: "" for key in current if key not in edited})
    return patch


@router.post("/{group_id}/delete")
def delete_group(request: Request, session: Signed, group_id: str, form: Posted) -> Response:
    need(session, "write")
    try:
        group = gw_of(request).groups.delete(group_id, context=context_of(request, session))
    except GroupwireError as error:
        return _group_page(request, group_id, status_code=status_of(error), error=error)
    return redirect("/groups", notice=f"Group “{group.name}” deleted.")


@router.post("/{group_id}/members")
def add_members(request: Request, session: Signed, group_id: str, form: Posted) -> Response:
    """Bulk paste: every address must match a customer, else nothing is added."""
    need(session, "write")
    gw = gw_of(request)
    text = form.get("emails")
    try:
        gw.groups.get(group_id)
        pasted = parse_emails(text)
        found = customers_by_email(gw, pasted.emails)
        unknown = [email for email in pasted.emails if email not in found]
        if pasted.invalid or unknown:
            problems = []
            if unknown:
                problems.append(_unmatched(len(unknown), len(pasted.emails)))
            if pasted.invalid:
                problems.append(_not_addresses(len(pasted.invalid)))
            raise _PasteRefused(
                "No member was added: "
                + "; ".join(problems)
                + ". Correct the list and paste again.",
                unknown,
                pasted.invalid,
            )
        if not pasted.emails:
            raise InvalidData("Paste at least one email address")
        change = gw.groups.add_customers(
            group_id,
            [found[email].id for email in pasted.emails],
            context=context_of(request, session),
        )
    except _PasteRefused as refused:
        return _group_page(
            request,
            group_id,
            status_code=400,
            error=refused,
            paste=text,
            unknown=refused.unknown,
            invalid=refused.invalid,
        )
    except GroupwireError as error:
        return _group_page(request, group_id, status_code=status_of(error), error=error, paste=text)
    already = len(pasted.emails) - len(change.added)
    notice = f"{len(change.added)} added to the group"
    if already:
        notice += f"; {already} already were members"
    return redirect(f"/groups/{group_id}", notice=notice + ".")


@router.post("/{group_id}/members/remove")
def remove_members(request: Request, session: Signed, group_id: str, form: Posted) -> Response:
    need(session, "write")
    chosen = form.getlist("customer_id")
    try:
        if not chosen:
            raise InvalidData("Select at least one member to remove")
        change = gw_of(request).groups.remove_customers(
            group_id, chosen, context=context_of(request, session)
        )
    except GroupwireError as error:
        return _group_page(request, group_id, status_code=status_of(error), error=error)
    return redirect(f"/groups/{group_id}", notice=f"{len(change.removed)} removed from the group.")


class _PasteRefused(InvalidData):
    def __init__(self, message: str, unknown: list[str], invalid: list[str]) -> None:
        super().__init__(message)
        self.unknown = unknown
        self.invalid = invalid


def _unmatched(unknown: int, given: int) -> str:
    verb = "matches" if unknown == 1 else "match"
    return f"{unknown} of {given} address{'' if given == 1 else 'es'} {verb} no customer"


def _not_addresses(count: int) -> str:
    return (
        "1 entry is not an email address"
        if count == 1
        else f"{count} entries are not email addresses"
    )
