"""``GET /admin/customer-groups/{id}/stats``: members over time, joins and leaves per bucket."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from groupwire.analytics.stats import group_stats
from groupwire.api.caller import GW
from groupwire.api.params import StrictQuery, Time

router = APIRouter(tags=["analytics"])


class StatsQuery(StrictQuery):
    granularity: Literal["hour", "day"] = Field("day", description="Bucket size (UTC)")
    since: Time = Field(None, description="Start (ISO 8601); default: 48 hours or 30 days ago")
    until: Time = Field(None, description="End, exclusive (ISO 8601); default: now")


@router.get(
    "/admin/customer-groups/{id}/stats",
    summary="Members now, and joins, leaves and members per hour or day (from the event log)",
)
async def customer_group_stats(
    gw: GW, id: str, query: Annotated[StatsQuery, Query()]
) -> JSONResponse:
    stats = await run_in_threadpool(
        group_stats,
        gw.engine,
        id,
        granularity=query.granularity,
        since=query.since,
        until=query.until,
    )
    return JSONResponse({"stats": stats.as_dict()})
