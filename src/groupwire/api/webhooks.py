"""``/admin/webhooks``: webhook endpoints, their messages, attempts, resends and replays.

Reading needs the ``read`` scope (the middleware's rule for GET); every change needs
``admin``: an endpoint receives the whole event stream and holds a signing secret. The
secret is in the answer to a create or a rotation and nowhere else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from groupwire.api.bodies import Body
from groupwire.api.caller import GW, require_scope
from groupwire.api.idempotency import OUTSIDE_SERVICE
from groupwire.api.params import MAX_LIMIT, MAX_OFFSET, RequiredTime, StrictQuery
from groupwire.api.render import deleted_json, iso, page_response
from groupwire.domain.errors import InvalidData
from groupwire.webhooks import webhooks_of
from groupwire.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage

router = APIRouter(prefix="/admin/webhooks", tags=["webhooks"], dependencies=[OUTSIDE_SERVICE])
ADMIN = [Depends(require_scope("admin"))]


class CreateWebhook(Body):
    url: str = Field(description="https URL the events are POSTed to")
    event_types: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Event types or patterns: `customer_group.*`, `customer.created`, `*`",
    )
    group_ids: list[str] | None = Field(None, description="Only events about these groups")
    description: str | None = None
    enabled: bool = True
    ordered: bool = Field(
        False, description="Deliver each group's events in order (later ones wait)"
    )


class UpdateWebhook(Body):
    """Only the fields sent change; ``group_ids`` and ``description`` may be set to null."""

    url: str = None  # type: ignore[assignment]
    event_types: list[str] = None  # type: ignore[assignment]
    group_ids: list[str] | None = None
    description: str | None = None
    enabled: bool = None  # type: ignore[assignment]
    ordered: bool = None  # type: ignore[assignment]


class Replay(Body):
    since: RequiredTime = Field(description="Replay every matching event committed since then")


class WebhookListQuery(StrictQuery):
    limit: int = Field(50, ge=1, le=MAX_LIMIT)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    enabled: bool | None = None


class MessageListQuery(StrictQuery):
    limit: int = Field(50, ge=1, le=MAX_LIMIT)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    status: Literal["pending", "succeeded", "failed"] | None = None
    event_type: str | None = None


class AttemptListQuery(StrictQuery):
    limit: int = Field(50, ge=1, le=MAX_LIMIT)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    message_id: str | None = None
    succeeded: bool | None = None


def _json(entity: WebhookEndpoint | WebhookMessage | WebhookAttempt) -> dict[str, Any]:
    return {
        key: iso(value) if isinstance(value, datetime) else value
        for key, value in entity.as_dict().items()
    }


def _not_null(body: UpdateWebhook) -> dict[str, Any]:
    given = body.given()
    for name in ("url", "event_types", "enabled", "ordered"):
        if name in given and given[name] is None:
            raise InvalidData(f"{name} cannot be null")
    return given


@router.get("", summary="List webhook endpoints (never their secrets)")
def list_webhooks(gw: GW, query: Annotated[WebhookListQuery, Query()]) -> JSONResponse:
    page = webhooks_of(gw).list(limit=query.limit, offset=query.offset, enabled=query.enabled)
    return page_response("webhooks", [_json(endpoint) for endpoint in page.items], page)


@router.post("", dependencies=ADMIN, summary="Create an endpoint; its secret is shown once, here")
def create_webhook(gw: GW, body: CreateWebhook) -> JSONResponse:
    endpoint = webhooks_of(gw).create(
        body.url,
        event_types=body.event_types,
        group_ids=body.group_ids,
        description=body.description,
        enabled=body.enabled,
        ordered=body.ordered,
    )
    return JSONResponse({"webhook": _json(endpoint)})


@router.get("/{id}", summary="One webhook endpoint")
def get_webhook(gw: GW, id: str) -> JSONResponse:
    return JSONResponse({"webhook": _json(webhooks_of(gw).get(id))})


@router.post("/{id}", dependencies=ADMIN, summary="Change an endpoint (url, filters, enabled...)")
def update_webhook(gw: GW, id: str, body: UpdateWebhook) -> JSONResponse:
    endpoint = webhooks_of(gw).update(id, **_not_null(body))
    return JSONResponse({"webhook": _json(endpoint)})


@router.delete("/{id}", dependencies=ADMIN, summary="Delete an endpoint and its delivery log")
def delete_webhook(gw: GW, id: str) -> JSONResponse:
    webhooks_of(gw).delete(id)
    return JSONResponse(deleted_json(id, "webhook"))


@router.post(
    "/{id}/rotate-secret",
    dependencies=ADMIN,
    summary="New secret (shown once); the old one keeps signing during the grace period",
)
def rotate_webhook_secret(gw: GW, id: str) -> JSONResponse:
    return JSONResponse({"webhook": _json(webhooks_of(gw).rotate_secret(id))})


@router.get("/{id}/messages", summary="The endpoint's messages, newest first")
def list_webhook_messages(
    gw: GW, id: str, query: Annotated[MessageListQuery, Query()]
) -> JSONResponse:
    page = webhooks_of(gw).messages(
        id,
        status=query.status,
        event_type=query.event_type,
        limit=query.limit,
        offset=query.offset,
    )
    return page_response("messages", [_json(message) for message in page.items], page)


@router.get("/{id}/messages/{message_id}", summary="One message and its delivery state")
def get_webhook_message(gw: GW, id: str, message_id: str) -> JSONResponse:
    return JSONResponse({"message": _json(webhooks_of(gw).message(id, message_id))})


@router.post(
    "/{id}/messages/{message_id}/resend",
    dependencies=ADMIN,
    summary="Send a message again now, with a fresh retry schedule",
)
def resend_webhook_message(gw: GW, id: str, message_id: str) -> JSONResponse:
    return JSONResponse({"message": _json(webhooks_of(gw).resend(id, message_id))})


@router.get("/{id}/attempts", summary="Every delivery attempt, newest first")
def list_webhook_attempts(
    gw: GW, id: str, query: Annotated[AttemptListQuery, Query()]
) -> JSONResponse:
    page = webhooks_of(gw).attempts(
        id,
        message_id=query.message_id,
        succeeded=query.succeeded,
        limit=query.limit,
        offset=query.offset,
    )
    return page_response("attempts", [_json(attempt) for attempt in page.items], page)


@router.post(
    "/{id}/replay",
    dependencies=ADMIN,
    summary="Deliver again every matching event since a time (new messages)",
)
def replay_webhook(gw: GW, id: str, body: Replay) -> JSONResponse:
    replayed = webhooks_of(gw).replay(id, body.since)
    return JSONResponse({"replayed": replayed, "since": iso(body.since)})
