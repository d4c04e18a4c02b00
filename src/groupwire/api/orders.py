"""``/admin/orders``: the order ledger, for any shop to report its orders (a Groupwire
addition; Medusa's own order routes are not served). Smart groups' rules read it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import Field
from sqlalchemy.engine import Connection

from groupwire.api.answers import ChangeAnswer
from groupwire.api.bodies import Body, Id
from groupwire.api.caller import GW, ChangeContext
from groupwire.domain.orders import STATUSES, RecordedOrder, order_json

router = APIRouter(prefix="/admin/orders", tags=["orders"])

Status = Literal["pending", "completed", "draft", "archived", "canceled", "requires_action"]
assert set(Status.__args__) == set(STATUSES)  # type: ignore[attr-defined]


class RecordOrder(Body):
    """An order, created or updated by its id: omitted fields keep their values."""

    id: Id
    customer_id: Id | None = Field(None, description="Needed for a new order")
    currency_code: str | None = Field(
        None, pattern="^[A-Za-z]{3}$", description="ISO 4217; needed for a new order"
    )
    total: Annotated[
        int | float | str | None,
        Field(description="Major units (99.95), at most 4 decimals; needed for a new order"),
    ] = None
    status: Status | None = Field(None, description="Medusa's; a new order is pending")
    placed_at: datetime | None = Field(None, description="A new order: now, a draft: none")
    canceled_at: datetime | None = Field(None, description="Set when the order is canceled")


def _answer(order: RecordedOrder, _conn: Connection | None) -> Response:
    return JSONResponse({"order": order_json(order)})


@router.post("", summary="Record an order (create or update by id)")
def record_order(gw: GW, body: RecordOrder, context: ChangeContext) -> Response:
    fields: dict[str, Any] = body.given()
    fields.pop("id", None)
    answer = ChangeAnswer(_answer)
    gw.orders.record(body.id, context=answer.on(context), **fields)
    return answer.response()


@router.get("/{id}", summary="Retrieve an order of the ledger")
def get_order(gw: GW, id: str) -> JSONResponse:
    return JSONResponse({"order": order_json(gw.orders.get(id))})
