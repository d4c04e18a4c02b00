"""The FastAPI application factory. Routers are listed here, one line each."""

from __future__ import annotations

from fastapi import FastAPI

from groupwire.app import Groupwire


def create_app(gw: Groupwire) -> FastAPI:
    """An ASGI app serving ``gw``. The caller owns ``gw`` (opens, starts and closes it)."""
    app = FastAPI(title="Groupwire Admin API", version="0.1.0")
    app.state.gw = gw
    # --- routers (one line each) ---
    return app
