"""``/admin/customers/{id}/addresses``: Medusa v2's customer address routes.

As in Medusa 2.21, creating, updating and deleting an address answer with the customer (the
parent), whose ``addresses`` appear when asked for with ``fields=*addresses``; the address
routes return Medusa's default address fields, ``fields=+is_default_shipping`` adds a field.
Unlike Medusa, an unknown customer or address is a 404 on every route (Medusa answers 200
with an empty body or list).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, StrictBool
from sqlalchemy.engine import Connection

from groupwire.api.answers import ChangeAnswer
from groupwire.api.bodies import AdditionalData, BodyWithAdditionalData
from groupwire.api.caller import GW, ChangeContext
from groupwire.api.json_body import JSONBody
from groupwire.api.params import (
    MAX_OFFSET,
    MAX_PAGE,
    FieldsQuery,
    Selection,
    etag,
    fields_param,
    order_param,
    parse_order,
    select_fields,
)
from groupwire.api.render import (
    ADDRESS_ORDER,
    ADDRESS_SHAPE,
    CUSTOMER_SHAPE,
    addresses_json,
    committed_json,
    customers_json,
    deleted_json,
    page_response,
)
from groupwire.app import Groupwire
from groupwire.domain.models import Customer

router = APIRouter(prefix="/admin/customers/{id}/addresses", tags=["customer addresses"])

METADATA_MERGE = 'On update merged: keys set, a key set to "" removed; null clears'


class AddressBody(BodyWithAdditionalData):
    """Medusa's ``AdminCreateCustomerAddress`` (also its update body): every field optional."""

    address_name: str | None = None
    is_default_shipping: StrictBool = Field(
        False, description="Make it the default; the previous default loses the flag"
    )
    is_default_billing: StrictBool = Field(
        False, description="Make it the default; the previous default loses the flag"
    )
    company: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    address_1: str | None = None
    address_2: str | None = None
    city: str | None = None
    country_code: str | None = None
    province: str | None = None
    postal_code: str | None = None
    phone: str | None = None
    metadata: dict[str, Any] | None = Field(None, description=METADATA_MERGE)
    additional_data: AdditionalData = None


class AddressListQuery(FieldsQuery):
    """Medusa's ``AdminCustomerAddressesParams``: these filters only."""

    q: str | None = Field(None, description="Search names, company, address lines, city, ...")
    company: list[str] | None = Field(None, description="Exact values (repeat the parameter)")
    city: list[str] | None = Field(None, description="Exact values (repeat the parameter)")
    country_code: list[str] | None = Field(None, description="Exact values (repeat the parameter)")
    province: list[str] | None = Field(None, description="Exact values (repeat the parameter)")
    postal_code: list[str] | None = Field(None, description="Exact values (repeat the parameter)")
    limit: int = Field(50, ge=0, le=MAX_PAGE)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    fields: str | None = fields_param(ADDRESS_SHAPE)
    order: str | None = order_param(ADDRESS_ORDER)


class AddressFields(FieldsQuery):
    fields: str | None = fields_param(ADDRESS_SHAPE)


class CustomerFields(FieldsQuery):
    fields: str | None = fields_param(CUSTOMER_SHAPE)


# --- response shapes, for the OpenAPI document (``fields`` may add or drop fields) ---------


class AddressJson(BaseModel):
    id: str
    address_name: str | None = None
    is_default_shipping: bool | None = Field(None, description="With fields=+is_default_shipping")
    is_default_billing: bool | None = Field(None, description="With fields=+is_default_billing")
    customer_id: str | None = None
    company: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    address_1: str | None = None
    address_2: str | None = None
    city: str | None = None
    country_code: str | None = None
    province: str | None = None
    postal_code: str | None = None
    phone: str | None = None
    metadata: dict[str, Any] | None = None
    created_at: str | None = None
    updated_at: str | None = None
    deleted_at: str | None = Field(None, description="With fields=+deleted_at")


class AddressResponse(BaseModel):
    address: AddressJson


class AddressListResponse(BaseModel):
    addresses: list[AddressJson]
    count: int
    offset: int
    limit: int


class CustomerResponse(BaseModel):
    customer: dict[str, Any] = Field(
        description="The customer; its `addresses` with fields=*addresses"
    )


class AddressDeletedResponse(BaseModel):
    id: str
    object: str = "customer_address"
    deleted: bool = True
    parent: dict[str, Any] = Field(description="The customer, as after the deletion")


class ErrorResponse(BaseModel):
    type: str
    message: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Invalid body or query (invalid_data)"},
    404: {"model": ErrorResponse, "description": "Unknown customer or address (not_found)"},
}
CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    400: {
        "model": ErrorResponse,
        "description": "Invalid body or query (invalid_data), "
        "or a before-hook vetoed the change (not_allowed)",
    },
}


def _customer_json(
    gw: Groupwire, customer: Customer, fields: str | None, conn: Connection | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The customer (the parent Medusa returns) as the change left it, and extra headers.

    The customer comes from the change itself; only its requested relations are read: in
    the change's transaction when ``conn`` is given, else after the commit, where a read that
    fails leaves them out (``committed_json``) rather than report a committed change failed.
    """
    selection = select_fields(fields, CUSTOMER_SHAPE)

    def render(chosen: Selection) -> dict[str, Any]:
        return customers_json(gw, [customer], chosen, conn)[0]

    if conn is not None:
        return render(selection), {}
    return committed_json(render, selection)


def _customer_answer(gw: Groupwire, fields: str | None) -> ChangeAnswer:
    """The answer to an address created or updated: its customer, with the customer's ETag."""

    def render(customer: Customer, conn: Connection | None) -> Response:
        body, headers = _customer_json(gw, customer, fields, conn)
        return JSONBody({"customer": body}, headers={"ETag": etag(customer.version), **headers})

    return ChangeAnswer(render)


@router.get(
    "",
    summary="List a customer's addresses",
    responses={200: {"model": AddressListResponse}, **ERRORS},
)
def list_addresses(gw: GW, id: str, query: Annotated[AddressListQuery, Query()]) -> JSONResponse:
    selection = select_fields(query.fields, ADDRESS_SHAPE)
    filters = {
        name: values
        for name in ("company", "city", "country_code", "province", "postal_code")
        if (values := getattr(query, name))
    }
    page = gw.customers.addresses.list(
        id,
        q=query.q,
        filters=filters,
        order=parse_order(query.order, ADDRESS_ORDER),
        limit=query.limit,
        offset=query.offset,
    )
    return page_response("addresses", addresses_json(page.items, selection), page)


@router.post(
    "",
    summary="Add an address to a customer",
    responses={200: {"model": CustomerResponse}, **CHANGE_ERRORS},
)
def create_address(
    gw: GW,
    id: str,
    body: AddressBody,
    context: ChangeContext,
    query: Annotated[CustomerFields, Query()],
) -> Response:
    select_fields(query.fields, CUSTOMER_SHAPE)
    answer = _customer_answer(gw, query.fields)
    gw.customers.addresses.create(id, context=answer.on(body.hook_context(context)), **body.given())
    return answer.response()


@router.get(
    "/{address_id}",
    summary="Retrieve a customer's address",
    responses={200: {"model": AddressResponse}, **ERRORS},
)
def get_address(
    gw: GW, id: str, address_id: str, query: Annotated[AddressFields, Query()]
) -> JSONResponse:
    selection = select_fields(query.fields, ADDRESS_SHAPE)
    address = gw.customers.addresses.get(id, address_id)
    return JSONBody({"address": addresses_json([address], selection)[0]})


@router.post(
    "/{address_id}",
    summary="Update a customer's address (metadata is merged)",
    responses={200: {"model": CustomerResponse}, **CHANGE_ERRORS},
)
def update_address(
    gw: GW,
    id: str,
    address_id: str,
    body: AddressBody,
    context: ChangeContext,
    query: Annotated[CustomerFields, Query()],
) -> Response:
    select_fields(query.fields, CUSTOMER_SHAPE)
    answer = _customer_answer(gw, query.fields)
    gw.customers.addresses.update(
        id, address_id, context=answer.on(body.hook_context(context)), **body.given()
    )
    return answer.response()


@router.delete(
    "/{address_id}",
    summary="Delete a customer's address",
    responses={200: {"model": AddressDeletedResponse}, **CHANGE_ERRORS},
)
def delete_address(
    gw: GW,
    id: str,
    address_id: str,
    context: ChangeContext,
    query: Annotated[CustomerFields, Query()],
) -> Response:
    select_fields(query.fields, CUSTOMER_SHAPE)

    def render(customer: Customer, conn: Connection | None) -> Response:
        parent, headers = _customer_json(gw, customer, query.fields, conn)
        body = {**deleted_json(address_id, "customer_address"), "parent": parent}
        return JSONBody(body, headers=headers)

    answer = ChangeAnswer(render)
    gw.customers.addresses.delete(id, address_id, context=answer.on(context))
    return answer.response()
