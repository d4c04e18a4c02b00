"""``/admin/customers``: Medusa v2's customer routes, each one facade call."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.engine import Connection

from groupwire.api.answers import ChangeAnswer
from groupwire.api.bodies import BatchIds, CreateCustomer, UpdateCustomer
from groupwire.api.caller import GW, ChangeContext
from groupwire.api.list_filters import (
    CUSTOMER_FILTERS,
    openapi_parameters,
    parse_query_string,
    raw_query,
    split_filters,
)
from groupwire.api.params import (
    IF_MATCH_SCHEMA,
    FieldsQuery,
    PageQuery,
    Selection,
    expected_version,
    fields_param,
    order_param,
    parse_order,
    select_fields,
)
from groupwire.api.render import (
    CUSTOMER_ORDER,
    CUSTOMER_SHAPE,
    customers_json,
    deleted_json,
    one_response,
    page_response,
)
from groupwire.app import Groupwire
from groupwire.domain.errors import NotFound
from groupwire.domain.models import Customer

router = APIRouter(prefix="/admin/customers", tags=["customers"])

IfMatch = Annotated[
    str | None,
    Header(description="Only if the customer's ETag (version) still matches"),
    IF_MATCH_SCHEMA,
]


class Fields(FieldsQuery):
    fields: str | None = fields_param(CUSTOMER_SHAPE)


class ListQuery(PageQuery):
    fields: str | None = fields_param(CUSTOMER_SHAPE)
    order: str | None = order_param(CUSTOMER_ORDER)


def _one(
    gw: Groupwire,
    customer: Customer,
    fields: str | None,
    *,
    committed: bool = False,
    conn: Connection | None = None,
) -> JSONResponse:
    """One customer as JSON (see ``one_response``); relations read on ``conn`` when given
    (a change's transaction, see ``answers``)."""

    def render(chosen: Selection) -> dict[str, Any]:
        return customers_json(gw, [customer], chosen, conn)[0]

    selection = select_fields(fields, CUSTOMER_SHAPE)
    return one_response("customer", render, selection, customer.version, committed=committed)


def _changed(gw: Groupwire, fields: str | None) -> ChangeAnswer:
    """The answer to a change of one customer: the customer, as the change left it."""

    def render(customer: Customer, conn: Connection | None) -> Response:
        return _one(gw, customer, fields, committed=conn is None, conn=conn)

    return ChangeAnswer(render)


@router.get(
    "",
    summary="List customers",
    openapi_extra={"parameters": openapi_parameters(CUSTOMER_FILTERS)},
)
def list_customers(gw: GW, request: Request, query: Annotated[ListQuery, Query()]) -> JSONResponse:
    selection = select_fields(query.fields, CUSTOMER_SHAPE)
    raw = parse_query_string(raw_query(request))
    _, where = split_filters(raw, CUSTOMER_FILTERS, tuple(ListQuery.model_fields))
    page = gw.customers.list(
        limit=query.limit,
        offset=query.offset,
        q=query.q,
        where=where,
        order=parse_order(query.order, CUSTOMER_ORDER),
    )
    return page_response("customers", customers_json(gw, page.items, selection), page)


@router.post("", summary="Create a customer")
def create_customer(
    gw: GW, body: CreateCustomer, context: ChangeContext, query: Annotated[Fields, Query()]
) -> Response:
    select_fields(query.fields, CUSTOMER_SHAPE)
    fields = body.given()
    email = fields.pop("email", None)
    answer = _changed(gw, query.fields)
    gw.customers.create(email, context=answer.on(body.hook_context(context)), **fields)
    return answer.response()


@router.get("/{id}", summary="Retrieve a customer")
def get_customer(gw: GW, id: str, query: Annotated[Fields, Query()]) -> JSONResponse:
    select_fields(query.fields, CUSTOMER_SHAPE)
    return _one(gw, gw.customers.get(id), query.fields)


@router.post("/{id}", summary="Update a customer (metadata is merged)")
def update_customer(
    gw: GW,
    id: str,
    body: UpdateCustomer,
    context: ChangeContext,
    query: Annotated[Fields, Query()],
    if_match: IfMatch = None,
) -> Response:
    select_fields(query.fields, CUSTOMER_SHAPE)
    version = expected_version(if_match, lambda: gw.customers.get(id).version)
    answer = _changed(gw, query.fields)
    gw.customers.update(
        id, expected_version=version, context=answer.on(body.hook_context(context)), **body.given()
    )
    return answer.response()


@router.delete("/{id}", summary="Delete a customer (it leaves its groups first)")
def delete_customer(gw: GW, id: str, context: ChangeContext, if_match: IfMatch = None) -> Response:
    version = expected_version(if_match, lambda: gw.customers.get(id).version)
    answer = ChangeAnswer(lambda _customer, _conn: JSONResponse(deleted_json(id, "customer")))
    try:
        gw.customers.delete(id, expected_version=version, context=answer.on(context))
    except NotFound:
        if if_match:  # a condition on what is not there: a 404, as before any change
            raise
        # Medusa answers the delete of an unknown or deleted customer as done; nothing is
        # written and no event recorded.
        return JSONResponse(deleted_json(id, "customer"))
    return answer.response()


@router.post(
    "/{id}/customer-groups", summary="Add the customer to groups and remove it from others"
)
def update_customer_customer_groups(
    gw: GW,
    id: str,
    body: BatchIds,
    context: ChangeContext,
    query: Annotated[Fields, Query()],
) -> Response:
    select_fields(query.fields, CUSTOMER_SHAPE)
    answer = _changed(gw, query.fields)
    gw.customers.update_groups(
        id, add=body.add, remove=body.remove, context=answer.on(body.hook_context(context))
    )
    return answer.response()
