"""Every error the Admin API returns, in Medusa's shape ``{"type", "message"}`` — mapped here only.

Domain errors carry their ``type``; this module picks the status. FastAPI's and Starlette's own
errors (validation, malformed JSON, unknown route, wrong method) are rewritten into the same
shape, and anything unexpected becomes a 500 ``unexpected_state`` without leaking internals.

A database that cannot be reached, or a connection lost mid-request, is a 503
``unexpected_state`` with ``Retry-After``, logged as one line (no traceback): the message says
whether anything was written (:class:`Unavailable`) or whether that is unknown
(:class:`OutcomeUnknown`, a connection lost during the COMMIT). Those errors can surface
before any route runs (authentication reads the API key), so :class:`DatabaseFailures`, an
ASGI middleware outside the others, answers them too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from groupwire.api.answers import as_response
from groupwire.api.validation import describe_validation_errors
from groupwire.domain.errors import (
    AlreadyApplied,
    GroupwireError,
    IdempotencyKeyReused,
    NotFound,
    OutcomeUnknown,
    Unavailable,
)
from groupwire.store.engine import UNAVAILABLE_MESSAGE, connection_lost, describe
from groupwire.store.unit_of_work import OUTCOME_UNKNOWN_MESSAGE

log = logging.getLogger("groupwire.api")

STATUS_BY_TYPE: dict[str, int] = {
    "invalid_data": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "not_allowed": 400,  # Medusa's answer to its own not_allowed: a veto is indistinguishable
    "conflict": 409,
    "precondition_failed": 412,
    "unexpected_state": 500,
}
TYPE_BY_STATUS: dict[int, str] = {
    400: "invalid_data",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "invalid_data",
    415: "invalid_data",
    422: "invalid_data",
}
# An Idempotency-Key reused for another request: Groupwire's own header (Medusa has none), so
# the answer of the IETF Idempotency-Key draft, unlike the 400 of a veto.
KEY_REUSED_STATUS = 422
RETRY_AFTER_SECONDS = 5
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Medusa's update routes say ``Customer group with id "X" not found`` (quoted), where its
# other routes say ``Customer group with id: X not found``.
QUOTED_NOT_FOUND = frozenset(
    {("POST", "/admin/customer-groups/{id}"), ("POST", "/admin/customers/{id}")}
)


class ApiError(GroupwireError):
    """An error raised by the HTTP layer itself (credentials, scopes), with its own type."""

    def __init__(self, type: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.type = type
        self.headers = dict(headers or {})


def unauthorized() -> ApiError:
    return ApiError(
        "unauthorized", "Unauthorized", {"WWW-Authenticate": 'Bearer, Basic realm="admin"'}
    )


def forbidden(scope: str) -> ApiError:
    return ApiError("forbidden", f"This API key lacks the {scope!r} scope")


def error_body(type: str, message: str) -> dict[str, str]:
    return {"type": type, "message": message}


def error_response(
    status: int, type: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(type, message), status_code=status, headers=dict(headers or {}))


def status_of(error: GroupwireError) -> int:
    if isinstance(error, Unavailable):
        return 503
    if isinstance(error, IdempotencyKeyReused):
        return KEY_REUSED_STATUS
    return STATUS_BY_TYPE.get(error.type, 400)


def unavailable(method: str, path: str, error: BaseException) -> Unavailable:
    """The 503 answer to a database failure, logged here as one line without a traceback.

    A lost connection that the service layer did not classify (a read, or a write outside the
    service's unit of work) is "nothing written" for a read and "outcome unknown" otherwise.
    """
    if isinstance(error, Unavailable):
        answer: Unavailable = error
    elif method in READ_METHODS:
        answer = Unavailable(UNAVAILABLE_MESSAGE)
    else:
        answer = OutcomeUnknown(OUTCOME_UNKNOWN_MESSAGE)
    cause = error.__cause__ if isinstance(error, Unavailable) else error
    log.warning(
        "database unavailable on %s %s, answered 503 (%s): %s",
        method,
        path,
        "outcome unknown" if isinstance(answer, OutcomeUnknown) else "nothing written",
        describe(cause) if cause is not None else answer.message,
    )
    return answer


def unavailable_response(method: str, path: str, error: BaseException) -> JSONResponse:
    answer = unavailable(method, path, error)
    return error_response(
        503, answer.type, answer.message, {"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


async def _groupwire_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, GroupwireError)
    if isinstance(error, Unavailable):
        return unavailable_response(request.method, request.url.path, error)
    if isinstance(error, AlreadyApplied) and error.answer is not None:
        return as_response(error.answer, replay=True)  # the key's first answer, as it was
    headers = getattr(error, "headers", None)
    message = error.message
    if isinstance(error, NotFound) and _route_of(request) in QUOTED_NOT_FOUND:
        message = error.quoted()
    return error_response(status_of(error), error.type, message, headers)


def _route_of(request: Request) -> tuple[str, str]:
    route = request.scope.get("route")
    return request.method, getattr(route, "path", "")


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return error_response(
        400, "invalid_data", describe_validation_errors(error.errors(), error.body)
    )


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    status = error.status_code
    headers = dict(error.headers or {})
    if status == 404:
        message = f"Route {request.method} {request.url.path} was not found"
    elif status == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
        headers["Allow"] = ", ".join(allowed_methods(request))
    else:
        message = str(error.detail)
    kind = TYPE_BY_STATUS.get(status, "invalid_data" if status < 500 else "unexpected_state")
    return error_response(status, kind, message, headers)


METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path (Starlette names only the first route's):
    each method is tried against the routes as the router itself would match it."""
    routes = request.app.router.routes
    return [
        method
        for method in METHOD_ORDER
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    if connection_lost(error):  # normally answered by DatabaseFailures already
        return unavailable_response(request.method, request.url.path, error)
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
    return error_response(500, "unexpected_state", "An unknown error occurred.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GroupwireError, _groupwire_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


class DatabaseFailures:
    """ASGI middleware answering a database failure from anywhere inside it (authentication
    middleware, routes) with the 503 of :func:`unavailable_response`.

    Starlette's catch-all handler would answer 500 and re-raise, so the server logs
    "Exception in ASGI application" with a traceback and drops the keep-alive connection;
    here the error is answered and the connection stays usable. A response already under way
    (a stream) cannot be replaced: that error is raised on.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watching(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watching)
        except Exception as error:
            if started or not (isinstance(error, Unavailable) or connection_lost(error)):
                raise
            response = unavailable_response(scope["method"], scope.get("path", ""), error)
            await response(scope, receive, send)
