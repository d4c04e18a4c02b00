"""Who is calling: the API key the middleware authenticated, and the ``Context`` of a change."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from groupwire.api.errors import forbidden, unauthorized
from groupwire.app import Groupwire
from groupwire.auth.keys import ApiKey, grants
from groupwire.domain.changes import Context
from groupwire.domain.errors import InvalidData


@dataclass(frozen=True, slots=True)
class KeyedRequest:
    """A write's ``Idempotency-Key`` and fingerprint (set by ``api.idempotency``), which
    ``change_context`` copies into the change's ``Context``."""

    key: str
    fingerprint: str


MALFORMED = "idempotency_key_malformed"
"""``request.state`` flag: the request's ``Idempotency-Key`` is malformed."""
ROUTED = "idempotency_key_routed"
"""``request.state`` flag: a write route took the request (and its key) in."""


def keyed_request(state: Any) -> KeyedRequest | None:
    """The request's ``Idempotency-Key`` and fingerprint (``groupwire.api.idempotency``),
    for a write route, which this marks as having taken the request in. A malformed key is
    refused here, by the route, so that the router still answers a method or path it does
    not serve with 405 or 404."""
    setattr(state, ROUTED, True)
    if getattr(state, MALFORMED, False):
        raise InvalidData(
            "Invalid request: Idempotency-Key must be 1 to 255 printable ASCII characters"
        )
    return getattr(state, "idempotency", None)


# The dependencies below are ``async`` though they never wait: FastAPI runs a plain ``def``
# dependency in the thread pool, one hop per dependency and request.


async def groupwire_of(request: Request) -> Groupwire:
    return request.app.state.gw


def current_key(request: Request) -> ApiKey:
    key = getattr(request.state, "api_key", None)
    if key is None:  # only on a route mounted outside /admin: no key was asked for
        raise unauthorized()
    return key


async def change_context(request: Request) -> Context:
    """Copied into every event: ``actor`` is the key id, ``correlation_id`` the request id;
    with the request's ``Idempotency-Key`` and fingerprint when it has one."""
    keyed = keyed_request(request.state)
    return Context(
        actor=current_key(request).id,
        correlation_id=getattr(request.state, "request_id", None),
        idempotency_key=keyed.key if keyed else None,
        request_fingerprint=keyed.fingerprint if keyed else None,
    )


def require_scope(scope: str) -> Callable[[Request], Awaitable[ApiKey]]:
    """A dependency demanding more than the method's default scope: ``require_scope("admin")``.

    Routers that need admin for every route pass it as ``dependencies=[Depends(...)]``.
    """

    async def dependency(request: Request) -> ApiKey:
        key = current_key(request)
        if not grants(key, scope):
            raise forbidden(scope)
        return key

    return dependency


GW = Annotated[Groupwire, Depends(groupwire_of)]
ChangeContext = Annotated[Context, Depends(change_context)]
