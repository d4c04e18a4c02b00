"""Pages for webhook endpoints: the list, and one endpoint with its messages and attempts.

Reading needs the ``read`` scope, as on the Admin API; creating an endpoint needs ``admin``
(an endpoint receives every event), and its signing secret is shown once, on the page that
answers the creation.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from groupwire.api.errors import ApiError, status_of
from groupwire.domain.errors import GroupwireError
from groupwire.ui.groups import PAGE_SIZE, offset_of
from groupwire.ui.sessions import Session
from groupwire.ui.web import (
    PREFIX,
    Form,
    UiRoute,
    gw_of,
    need,
    posted_form,
    render,
    session_of,
)
from groupwire.webhooks import Webhooks, webhooks_of

router = APIRouter(prefix=f"{PREFIX}/webhooks", route_class=UiRoute, include_in_schema=False)
Signed = Annotated[Session, Depends(session_of)]
Posted = Annotated[Form, Depends(posted_form)]


def _webhooks(request: Request) -> Webhooks:
    try:
        return webhooks_of(gw_of(request))
    except RuntimeError:
        raise ApiError("not_found", "Webhooks are not enabled on this server") from None


@router.get("")
def list_endpoints(request: Request, session: Signed, offset: str = "") -> Response:
    return _list_page(request, offset=offset_of(offset))


def _list_page(
    request: Request,
    *,
    offset: int = 0,
    status_code: int = 200,
    error: GroupwireError | None = None,
    form: Form | None = None,
) -> Response:
    page = _webhooks(request).list(limit=PAGE_SIZE, offset=offset)
    return render(
        request,
        "webhooks.html",
        status_code=status_code,
        error=error,
        nav="webhooks",
        page=page,
        form=form or Form(),
    )


@router.post("")
def create_endpoint(request: Request, session: Signed, form: Posted) -> Response:
    need(session, "admin")
    types = [t.strip() for t in form.get("event_types").replace(",", " ").split() if t.strip()]
    try:
        endpoint = _webhooks(request).create(
            form.get("url").strip(),
            event_types=types or ["*"],
            description=form.get("description").strip() or None,
        )
    except GroupwireError as error:
        return _list_page(request, status_code=status_of(error), error=error, form=form)
    return _endpoint_page(request, endpoint.id, secret=endpoint.secret)


@router.get("/{endpoint_id}")
def show_endpoint(request: Request, session: Signed, endpoint_id: str) -> Response:
    return _endpoint_page(request, endpoint_id)


def _endpoint_page(request: Request, endpoint_id: str, *, secret: str | None = None) -> Response:
    webhooks = _webhooks(request)
    endpoint = webhooks.get(endpoint_id)
    messages = webhooks.messages(endpoint_id, limit=PAGE_SIZE)
    attempts = webhooks.attempts(endpoint_id, limit=PAGE_SIZE)
    return render(
        request,
        "webhook.html",
        nav="webhooks",
        endpoint=endpoint,
        messages=messages,
        attempts=attempts,
        secret=secret,
    )
