"""``uvicorn --factory groupwire.api.asgi:create_app_from_env``: a server configured by GROUPWIRE_*.

The app owns its ``Groupwire`` here: opened (and migrated) when the factory runs, its relay
started when the server starts and everything closed when it stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from groupwire.api.app import create_app
from groupwire.app import Groupwire


def create_app_from_env() -> FastAPI:
    gw = Groupwire.open()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gw.start()
        try:
            yield
        finally:
            gw.close()

    return create_app(gw, lifespan=lifespan)
