"""The live event feed: the latest events, rendered here, then new ones as they commit.

The page's script follows ``GET /admin/events/stream`` (Server-Sent Events) with the session
cookie, starting after the newest event shown, so nothing is missed or shown twice.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from groupwire.ui.sessions import Session
from groupwire.ui.web import PREFIX, UiRoute, gw_of, render, session_of

router = APIRouter(prefix=f"{PREFIX}/events", route_class=UiRoute, include_in_schema=False)
Signed = Annotated[Session, Depends(session_of)]
SHOWN = 50


@router.get("")
def live_feed(request: Request, session: Signed) -> Response:
    gw = gw_of(request)
    latest = gw.events.list(limit=SHOWN, descending=True)
    after = latest[0].sequence if latest else gw.events.last_sequence()
    return render(request, "events.html", nav="events", events=latest, after=after)
