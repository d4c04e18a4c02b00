"""``/admin/customer-groups``: Medusa v2's customer-group routes, each one facade call."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.engine import Connection

from groupwire.api.answers import ChangeAnswer
from groupwire.api.bodies import BatchIds, CreateCustomerGroup, PreviewRule, UpdateCustomerGroup
from groupwire.api.caller import GW, ChangeContext
from groupwire.api.idempotency import OUTSIDE_SERVICE
from groupwire.api.list_filters import (
    GROUP_FILTERS,
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
    GROUP_ORDER,
    GROUP_SHAPE,
    deleted_json,
    groups_json,
    one_response,
    page_response,
)
from groupwire.app import Groupwire
from groupwire.domain.errors import NotFound
from groupwire.domain.models import CustomerGroup

router = APIRouter(prefix="/admin/customer-groups", tags=["customer groups"])

IfMatch = Annotated[
    str | None,
    Header(description="Only if the group's ETag (version) still matches"),
    IF_MATCH_SCHEMA,
]


class Fields(FieldsQuery):
    fields: str | None = fields_param(GROUP_SHAPE)


class ListQuery(PageQuery):
    fields: str | None = fields_param(GROUP_SHAPE)
    order: str | None = order_param(GROUP_ORDER)


def _one(
    gw: Groupwire,
    group: CustomerGroup,
    fields: str | None,
    *,
    committed: bool = False,
    conn: Connection | None = None,
) -> JSONResponse:
    """One customer group as JSON (see ``one_response``); relations read on ``conn`` when
    given (a change's transaction, see ``answers``)."""

    def render(chosen: Selection) -> dict[str, Any]:
        return groups_json(gw, [group], chosen, conn)[0]

    selection = select_fields(fields, GROUP_SHAPE)
    return one_response("customer_group", render, selection, group.version, committed=committed)


def _changed(gw: Groupwire, fields: str | None) -> ChangeAnswer:
    """The answer to a change of one group: the group, as the change left it."""

    def render(group: CustomerGroup, conn: Connection | None) -> Response:
        return _one(gw, group, fields, committed=conn is None, conn=conn)

    return ChangeAnswer(render)


@router.get(
    "",
    summary="List customer groups",
    openapi_extra={"parameters": openapi_parameters(GROUP_FILTERS)},
)
def list_customer_groups(
    gw: GW, request: Request, query: Annotated[ListQuery, Query()]
) -> JSONResponse:
    selection = select_fields(query.fields, GROUP_SHAPE)
    raw = parse_query_string(raw_query(request))
    _, where = split_filters(raw, GROUP_FILTERS, tuple(ListQuery.model_fields))
    page = gw.groups.list(
        limit=query.limit,
        offset=query.offset,
        q=query.q,
        where=where,
        order=parse_order(query.order, GROUP_ORDER),
    )
    return page_response("customer_groups", groups_json(gw, page.items, selection), page)


@router.post("", summary="Create a customer group")
def create_customer_group(
    gw: GW,
    body: CreateCustomerGroup,
    context: ChangeContext,
    query: Annotated[Fields, Query()],
) -> Response:
    select_fields(query.fields, GROUP_SHAPE)  # refuse a bad selection before writing
    answer = _changed(gw, query.fields)
    gw.groups.create(
        body.name,
        description=body.description,
        metadata=body.metadata,
        rule=body.rule,
        context=answer.on(body.hook_context(context)),
    )
    return answer.response()


@router.get("/{id}", summary="Retrieve a customer group")
def get_customer_group(gw: GW, id: str, query: Annotated[Fields, Query()]) -> JSONResponse:
    select_fields(query.fields, GROUP_SHAPE)
    return _one(gw, gw.groups.get(id), query.fields)


@router.post("/{id}", summary="Update a customer group (metadata is merged)")
def update_customer_group(
    gw: GW,
    id: str,
    body: UpdateCustomerGroup,
    context: ChangeContext,
    query: Annotated[Fields, Query()],
    if_match: IfMatch = None,
) -> Response:
    select_fields(query.fields, GROUP_SHAPE)
    version = expected_version(if_match, lambda: gw.groups.get(id).version)
    answer = _changed(gw, query.fields)
    gw.groups.update(
        id, expected_version=version, context=answer.on(body.hook_context(context)), **body.given()
    )
    return answer.response()


@router.delete("/{id}", summary="Delete a customer group (its members leave it first)")
def delete_customer_group(
    gw: GW, id: str, context: ChangeContext, if_match: IfMatch = None
) -> Response:
    version = expected_version(if_match, lambda: gw.groups.get(id).version)
    answer = ChangeAnswer(lambda _group, _conn: JSONResponse(deleted_json(id, "customer_group")))
    try:
        gw.groups.delete(id, expected_version=version, context=answer.on(context))
    except NotFound:
        if if_match:  # a condition on what is not there: a 404, as before any change
            raise
        # Medusa answers the delete of an unknown or deleted group as done; nothing is
        # written and no event recorded.
        return JSONResponse(deleted_json(id, "customer_group"))
    return answer.response()


@router.post("/{id}/customers", summary="Add and remove customers, all or nothing")
def update_customer_group_customers(
    gw: GW,
    id: str,
    body: BatchIds,
    context: ChangeContext,
    query: Annotated[Fields, Query()],
) -> Response:
    select_fields(query.fields, GROUP_SHAPE)
    answer = _changed(gw, query.fields)
    gw.groups.update_customers(
        id, add=body.add, remove=body.remove, context=answer.on(body.hook_context(context))
    )
    return answer.response()


@router.post(
    "/{id}/preview-rule",
    summary="Who would join and who would leave under a rule (nothing is written)",
    dependencies=[OUTSIDE_SERVICE],  # a read: a key only makes a retry answer the same
)
def preview_customer_group_rule(
    gw: GW,
    id: str,
    body: PreviewRule,
    limit: Annotated[int, Query(ge=0, le=1000, description="Ids listed of each")] = 20,
) -> JSONResponse:
    preview = gw.groups.preview_rule(id, body.rule, limit=limit)
    return JSONResponse(
        {
            "preview": {
                "joining": {"count": preview.joining, "customer_ids": preview.joining_ids},
                "leaving": {"count": preview.leaving, "customer_ids": preview.leaving_ids},
            }
        }
    )
