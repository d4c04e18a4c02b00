"""The event log over HTTP: listing with a sequence cursor, a group's audit trail, a live stream."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from groupwire.api.caller import GW
from groupwire.api.live import CommitSignal, tail
from groupwire.api.params import MAX_SEQUENCE, EventListQuery, EventQuery, StreamQuery
from groupwire.app import Groupwire
from groupwire.domain.errors import InvalidData, NotFound
from groupwire.domain.models import Event

router = APIRouter(tags=["events"])


def _page(events: list[Event], after: int | None) -> JSONResponse:
    next_after = events[-1].sequence if events else (after or 0)
    return JSONResponse(
        {
            "events": [event.envelope() for event in events],
            "count": len(events),
            "next_after": next_after,
        }
    )


def _list(gw: Groupwire, query: EventQuery, subject: str | None) -> list[Event]:
    return gw.events.list(
        type=query.type,
        subject=subject,
        since=query.since,
        until=query.until,
        after=query.after,
        limit=query.limit,
    )


@router.get("/admin/events", summary="Events in commit order, after a sequence cursor")
def list_events(gw: GW, query: Annotated[EventListQuery, Query()]) -> JSONResponse:
    return _page(_list(gw, query, query.subject), query.after)


@router.get("/admin/customer-groups/{id}/events", summary="A customer group's audit trail")
def list_customer_group_events(
    gw: GW, id: str, query: Annotated[EventQuery, Query()]
) -> JSONResponse:
    try:
        gw.groups.get(id)
    except NotFound:  # a deleted group keeps its trail; an id that never was a group has none
        if not gw.events.list(subject=id, type="customer_group.*", limit=1):
            raise
    return _page(_list(gw, query, id), query.after)


@router.get(
    "/admin/events/stream",
    summary="Live events as Server-Sent Events (`id:` is the sequence)",
    response_class=StreamingResponse,
)
async def stream_events(
    request: Request,
    query: Annotated[StreamQuery, Query()],
    last_event_id: Annotated[
        str | None, Header(description="Resume after this sequence (set by EventSource)")
    ] = None,
) -> StreamingResponse:
    gw: Groupwire = request.app.state.gw
    signal: CommitSignal = request.app.state.commit_signal
    after = query.after
    if after is None and last_event_id:
        value = last_event_id.strip()
        if not (value.isascii() and value.isdigit() and int(value) <= MAX_SEQUENCE):
            raise InvalidData("Last-Event-ID must be an event sequence")
        after = int(value)
    if after is None:
        after = await run_in_threadpool(gw.events.last_sequence)
    return StreamingResponse(
        tail(gw, signal, after=after, types=query.type),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
