"""Pages for customers: the searchable list (with each one's groups) and a form to create one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from groupwire.api.errors import status_of
from groupwire.domain.errors import GroupwireError
from groupwire.store import repository as repo
from groupwire.ui.groups import PAGE_SIZE, offset_of
from groupwire.ui.sessions import Session
from groupwire.ui.web import (
    PREFIX,
    Form,
    UiRoute,
    context_of,
    gw_of,
    need,
    posted_form,
    redirect,
    render,
    session_of,
)

router = APIRouter(prefix=f"{PREFIX}/customers", route_class=UiRoute, include_in_schema=False)
Signed = Annotated[Session, Depends(session_of)]
Posted = Annotated[Form, Depends(posted_form)]
CUSTOMER_FIELDS = ("first_name", "last_name", "company_name", "phone")


@router.get("")
def list_customers(request: Request, session: Signed, q: str = "", offset: str = "") -> Response:
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
    gw = gw_of(request)
    page = gw.customers.list(q=q or None, limit=PAGE_SIZE, offset=offset, order="email")
    with gw.engine.connect() as conn:  # one query for every listed customer's groups
        groups = repo.groups_of_customers(conn, [customer.id for customer in page.items])
    return render(
        request,
        "customers.html",
        status_code=status_code,
        error=error,
        nav="customers",
        q=q,
        page=page,
        groups=groups,
        form=form or Form(),
    )


@router.post("")
def create_customer(request: Request, session: Signed, form: Posted) -> Response:
    need(session, "write")
    fields = {name: form.get(name).strip() or None for name in CUSTOMER_FIELDS}
    try:
        customer = gw_of(request).customers.create(
            form.get("email").strip() or None,  # a blank email: a customer without one
            context=context_of(request, session),
            **fields,
        )
    except GroupwireError as error:
        return _list_page(request, status_code=status_of(error), error=error, form=form)
    named = customer.email or f"{customer.id} (no email)"
    return redirect("/customers", notice=f"Customer {named} created.", q=customer.email)
