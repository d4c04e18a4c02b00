"""Welcome emails per customer group, and stakeholder notification rules.

``/admin/customer-groups/{id}/welcome-email`` (GET, PUT, DELETE, POST ``/preview``) needs the
method's default scope; ``/admin/notification-rules`` changes need ``admin``, as webhooks do:
a rule sends customer data to addresses or URLs of the caller's choosing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import Field
from pydantic.json_schema import JsonDict

from groupwire.api.bodies import NOT_BLANK, Body, Email
from groupwire.api.caller import GW, require_scope
from groupwire.api.idempotency import OUTSIDE_SERVICE
from groupwire.api.params import MAX_LIMIT, MAX_OFFSET, StrictQuery
from groupwire.api.render import deleted_json, iso, page_response
from groupwire.domain.errors import InvalidData
from groupwire.mail import mail_of
from groupwire.mail.welcome import WelcomeEmail
from groupwire.notify import notifications_of
from groupwire.notify.rules import NotificationRule

router = APIRouter(tags=["mail"], dependencies=[OUTSIDE_SERVICE])
ADMIN = [Depends(require_scope("admin"))]
NOT_EMPTY: JsonDict = {"pattern": NOT_BLANK}
TEMPLATE_HELP = "Jinja2 over `customer` and `group`, e.g. `Welcome {{ customer.first_name }}`"


class PutWelcomeEmail(Body):
    subject: str = Field(description=TEMPLATE_HELP, json_schema_extra=NOT_EMPTY)
    body: str = Field(description="Plain-text body; " + TEMPLATE_HELP, json_schema_extra=NOT_EMPTY)
    html_body: str | None = Field(
        None, description="Optional HTML alternative (autoescaped)", json_schema_extra=NOT_EMPTY
    )
    sender: str | None = Field(None, description="From; default: GROUPWIRE_MAIL_SENDER")
    enabled: bool = True


class Preview(Body):
    customer_id: str | None = Field(None, description="Render for this customer (else a sample)")


class CreateRule(Body):
    group_id: str
    event_type: str = Field(
        "customer_group.customer_added", description="customer_added or customer_removed"
    )
    emails: list[Email] = Field(default_factory=list, description="Stakeholders to mail")
    webhook_url: str | None = Field(None, description="An https URL to notify (signed)")
    subject: str | None = Field(
        None, description="Optional; " + TEMPLATE_HELP, json_schema_extra=NOT_EMPTY
    )
    body: str | None = Field(
        None, description="Optional; " + TEMPLATE_HELP, json_schema_extra=NOT_EMPTY
    )
    sender: str | None = None
    description: str | None = None
    enabled: bool = True


class UpdateRule(Body):
    emails: list[Email] = None  # type: ignore[assignment]  # null is refused
    webhook_url: str | None = Field(None, description="null removes the rule's webhook")
    subject: str | None = None
    body: str | None = None
    sender: str | None = None
    description: str | None = None
    enabled: bool = None  # type: ignore[assignment]  # null is refused


class RuleListQuery(StrictQuery):
    group_id: str | None = None
    limit: int = Field(50, ge=0, le=MAX_LIMIT)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


def _json(entity: WelcomeEmail | NotificationRule) -> dict[str, Any]:
    return {
        key: iso(value) if isinstance(value, datetime) else value
        for key, value in entity.as_dict().items()
    }


# --- welcome emails --------------------------------------------------------------------------


@router.get("/admin/customer-groups/{id}/welcome-email", summary="A group's welcome email")
def get_welcome_email(gw: GW, id: str) -> JSONResponse:
    return JSONResponse({"welcome_email": _json(mail_of(gw).get(id))})


@router.put(
    "/admin/customer-groups/{id}/welcome-email",
    summary="Set a group's welcome email (templates are checked before saving)",
)
def put_welcome_email(gw: GW, id: str, body: PutWelcomeEmail) -> JSONResponse:
    welcome = mail_of(gw).set(
        id,
        subject=body.subject,
        body=body.body,
        html_body=body.html_body,
        sender=body.sender,
        enabled=body.enabled,
    )
    return JSONResponse({"welcome_email": _json(welcome)})


@router.delete("/admin/customer-groups/{id}/welcome-email", summary="Stop welcoming new members")
def delete_welcome_email(gw: GW, id: str) -> JSONResponse:
    mail_of(gw).delete(id)
    return JSONResponse(deleted_json(id, "welcome_email"))


@router.post(
    "/admin/customer-groups/{id}/welcome-email/preview",
    summary="Render the welcome email for a customer (nothing is sent)",
)
def preview_welcome_email(gw: GW, id: str, body: Preview) -> JSONResponse:
    mail = mail_of(gw).preview(id, body.customer_id)
    return JSONResponse(
        {"preview": {"subject": mail.subject, "body": mail.body, "html_body": mail.html_body}}
    )


# --- notification rules ----------------------------------------------------------------------


@router.get("/admin/notification-rules", summary="List notification rules")
def list_rules(gw: GW, query: Annotated[RuleListQuery, Query()]) -> JSONResponse:
    page = notifications_of(gw).list(
        group_id=query.group_id, limit=query.limit, offset=query.offset
    )
    return page_response("notification_rules", [_json(rule) for rule in page.items], page)


@router.post(
    "/admin/notification-rules",
    dependencies=ADMIN,
    summary="Create a rule; with a webhook_url the answer shows the webhook secret, once",
)
def create_rule(gw: GW, body: CreateRule) -> JSONResponse:
    rule = notifications_of(gw).create(
        body.group_id,
        event_type=body.event_type,
        emails=body.emails,
        webhook_url=body.webhook_url,
        subject=body.subject,
        body=body.body,
        sender=body.sender,
        description=body.description,
        enabled=body.enabled,
    )
    return JSONResponse({"notification_rule": _json(rule)})


@router.get("/admin/notification-rules/{id}", summary="One notification rule")
def get_rule(gw: GW, id: str) -> JSONResponse:
    return JSONResponse({"notification_rule": _json(notifications_of(gw).get(id))})


@router.post("/admin/notification-rules/{id}", dependencies=ADMIN, summary="Update a rule")
def update_rule(gw: GW, id: str, body: UpdateRule) -> JSONResponse:
    given = body.given()
    for name in ("emails", "enabled"):
        if name in given and given[name] is None:
            raise InvalidData(f"{name} cannot be null")
    rule = notifications_of(gw).update(id, **given)
    return JSONResponse({"notification_rule": _json(rule)})


@router.delete(
    "/admin/notification-rules/{id}",
    dependencies=ADMIN,
    summary="Delete a rule (and the webhook endpoint it made)",
)
def delete_rule(gw: GW, id: str) -> JSONResponse:
    notifications_of(gw).delete(id)
    return JSONResponse(deleted_json(id, "notification_rule"))
