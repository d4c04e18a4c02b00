"""Audit export: a group's or a customer's event log, streamed as CSV or JSON lines."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import Field

from groupwire.api.caller import GW
from groupwire.api.params import StrictQuery, Time
from groupwire.audit.export import MEDIA_TYPES, export_lines, trail

router = APIRouter(tags=["audit"])


class ExportQuery(StrictQuery):
    format: Literal["csv", "jsonl"] = Field("csv", description="csv or jsonl (one JSON per line)")
    since: Time = Field(None, description="Events at or after this time (ISO 8601)")
    until: Time = Field(None, description="Events before this time (ISO 8601)")


def _stream(
    kind: str, id: str, query: ExportQuery, make: Callable[[], object]
) -> StreamingResponse:
    events = make()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        export_lines(events, query.format),  # type: ignore[arg-type]
        media_type=MEDIA_TYPES[query.format],
        headers={
            "Content-Disposition": f'attachment; filename="{kind}-{id}-events-{stamp}.'
            f'{query.format}"',
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/admin/customer-groups/{id}/events/export",
    summary="Export a group's event log (CSV or JSON lines, streamed)",
    response_class=StreamingResponse,
)
def export_customer_group_events(
    gw: GW, id: str, query: Annotated[ExportQuery, Query()]
) -> StreamingResponse:
    return _stream(
        "customer-group",
        id,
        query,
        lambda: trail(gw.engine, group_id=id, since=query.since, until=query.until),
    )


@router.get(
    "/admin/customers/{id}/events/export",
    summary="Export a customer's event log, memberships included (CSV or JSON lines)",
    response_class=StreamingResponse,
)
def export_customer_events(
    gw: GW, id: str, query: Annotated[ExportQuery, Query()]
) -> StreamingResponse:
    return _stream(
        "customer",
        id,
        query,
        lambda: trail(gw.engine, customer_id=id, since=query.since, until=query.until),
    )
