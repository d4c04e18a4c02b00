"""The FastAPI application factory. Routers are listed here, one line each.

Requests pass ``RequestContext`` (request id, query normalisation), ``BodyLimit`` (413 over
``GROUPWIRE_API_MAX_BODY_BYTES``), ``DatabaseFailures`` (a lost database is a 503),
``AdminAuth`` (an API key with the right scope on every ``/admin`` path) and
``IdempotentRequests`` (the ``Idempotency-Key`` of a write) before reaching a router;
every error leaves through :mod:`groupwire.api.errors`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI

from groupwire.api import (
    api_keys,
    audit,
    customer_addresses,
    customer_groups,
    customers,
    events,
    mail,
    ops,
    orders,
    stats,
    webhooks,
)
from groupwire.api.errors import DatabaseFailures, install_error_handlers
from groupwire.api.idempotency import IdempotentRequests
from groupwire.api.live import CommitSignal
from groupwire.api.middleware import AdminAuth, BodyLimit, RequestContext
from groupwire.api.openapi import document
from groupwire.app import Groupwire
from groupwire.ui.router import router as ui_router

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]

DESCRIPTION = """Customer groups with Medusa v2's Admin API shapes, plus an event log.

Every `/admin` route needs an API key: `Authorization: Bearer gw_sk_...`, or Basic auth with
the key as user name and an empty password. Errors are `{"type", "message"}`.
"""


def create_app(gw: Groupwire, *, lifespan: Lifespan | None = None) -> FastAPI:
    """An ASGI app serving ``gw``. The caller owns ``gw`` (opens, starts and closes it)."""
    app = FastAPI(
        title="Groupwire Admin API", version="0.1.0", description=DESCRIPTION, lifespan=lifespan
    )
    app.state.gw = gw
    app.state.commit_signal = CommitSignal()
    gw.service.commit_listeners.append(app.state.commit_signal)
    install_error_handlers(app)
    app.add_middleware(IdempotentRequests, gw=gw)  # after authentication: keys are per API key
    app.add_middleware(AdminAuth, gw=gw)
    app.add_middleware(DatabaseFailures)  # answers a lost database from AdminAuth on inwards
    app.add_middleware(BodyLimit, max_bytes=gw.settings.api_max_body_bytes)
    app.add_middleware(RequestContext)  # added last, so it runs first
    # --- routers (one line each) ---
    app.include_router(customer_groups.router)
    app.include_router(customers.router)
    app.include_router(customer_addresses.router)  # /admin/customers/{id}/addresses
    app.include_router(events.router)
    app.include_router(orders.router)  # the order ledger smart groups read
    app.include_router(api_keys.router)
    app.include_router(webhooks.router)
    app.include_router(ops.router)  # /health, /metrics
    app.include_router(stats.router)  # /admin/customer-groups/{id}/stats
    app.include_router(audit.router)  # .../events/export
    app.include_router(mail.router)  # welcome emails, notification rules
    app.include_router(ui_router)  # /app: the admin web page
    document(app)  # the OpenAPI document: security, every error answer, text rules
    return app
