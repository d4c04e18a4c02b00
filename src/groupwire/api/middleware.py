"""Three small ASGI middlewares that run before any route: request context, the body size
limit, then authentication.

``RequestContext`` gives every request an id (the caller's ``x-request-id`` when it is a
sensible token, else a new one), echoes it in the response, rewrites Medusa-style array keys
(``id[]=a``, ``id[0]=a``) to repeated keys (``id=a``) and refuses NUL characters, which no
backend can store. ``BodyLimit`` refuses a body larger than the configured limit with 413,
from its ``Content-Length`` when it has one and else while it streams in, so no more than the
limit is ever held in memory; and any answer that starts before the request body was read to
its end (that 413, a 401) first reads and drops the rest of the body (:func:`drain_body`), so
a client that writes its whole request before reading gets the answer, not a connection reset.
``AdminAuth`` requires an active API key on every ``/admin`` path (routers added later
included) and the scope the method needs; the key lands in ``request.state``. A key
verified in the last ``GROUPWIRE_API_KEY_CACHE_SECONDS`` is trusted without a database round
trip (:class:`~groupwire.auth.keys.VerifiedKeys`).
A read without an ``Authorization`` header may instead carry the admin page's session cookie
(:mod:`groupwire.ui.sessions`), which is how the page's event stream and charts authenticate.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from groupwire.api.errors import error_response, forbidden, unauthorized
from groupwire.app import Groupwire
from groupwire.auth.keys import ApiKey, VerifiedKeys, authenticate, grants
from groupwire.ui.sessions import session_key

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")
_ARRAY_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[\d*\]$")
ADMIN_PREFIX = "/admin"
KEY_ROUTES = "/admin/api-keys"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# How much of an unread request body an early answer reads and drops before it is sent (the
# lingering close of nginx): past either bound the server answers and closes anyway.
LINGER_BYTES = 64 * 1024 * 1024
LINGER_SECONDS = 10.0


def required_scope(method: str, path: str) -> str:
    """The scope a request needs: key management is admin, reads are read, the rest write."""
    if path == KEY_ROUTES or path.startswith(KEY_ROUTES + "/"):
        return "admin"
    return "read" if method in READ_METHODS else "write"


def _state(scope: Scope) -> dict[str, Any]:
    return scope.setdefault("state", {})


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        request_id = given if _REQUEST_ID.match(given) else f"req_{uuid.uuid4().hex}"
        _state(scope)["request_id"] = request_id

        query = scope.get("query_string", b"").decode("latin-1")
        _state(scope)["raw_query_string"] = query
        pairs = parse_qsl(query, keep_blank_values=True)
        if "\x00" in scope.get("path", "") or any("\x00" in k + v for k, v in pairs):
            response = error_response(
                400, "invalid_data", "Invalid request: NUL characters are not allowed"
            )
            await response(scope, receive, _with_id(send, request_id))
            return
        if any(_ARRAY_KEY.match(key) for key, _ in pairs):
            renamed = [(_ARRAY_KEY.sub(r"\1", key), value) for key, value in pairs]
            scope = {**scope, "query_string": urlencode(renamed).encode("latin-1")}
        await self.app(scope, receive, _with_id(send, request_id))


def _with_id(send: Send, request_id: str) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
        await send(message)

    return wrapped


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes the limit; answered as 413 ``invalid_data``."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body is larger than the limit of {limit:,} bytes")


async def drain_body(
    receive: Receive, max_bytes: int = LINGER_BYTES, seconds: float = LINGER_SECONDS
) -> bool:
    """Read and drop what is left of a request body: True once it ended (or the client left),
    False when ``max_bytes`` or ``seconds`` ran out first.

    An answer sent with the body unread ends in a close with unread data, which the kernel
    turns into a reset: a client still writing its body (urllib, most HTTP/1.1 clients) then
    sees the reset and never reads the answer.
    """
    dropped = 0
    with anyio.move_on_after(seconds):
        while True:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return True
            dropped += len(message.get("body", b""))
            if dropped > max_bytes:
                return False
    return False


class BodyLimit:
    """The body size limit (413), and the rest of an unread body drained before any answer."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        # A client that awaits "100 Continue" sends no body unless one is read: none to drain.
        ended = (declared in ("", "0") and "transfer-encoding" not in headers) or (
            headers.get("expect", "").lower() == "100-continue"
        )
        if declared.isascii() and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send, drain=not ended)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received, ended
            message = await receive()
            if message["type"] == "http.request":
                ended = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            else:
                ended = True
            return message

        started = False

        async def watched(message: Message) -> None:
            nonlocal started, ended
            if message["type"] == "http.response.start" and not started:
                started = True
                if not ended:
                    ended = True
                    if not await drain_body(receive):
                        MutableHeaders(scope=message)["connection"] = "close"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:  # read outside a route (routes answer it through errors.py)
            if started:
                raise
            await self._refuse(scope, receive, send, drain=not ended)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, *, drain: bool) -> None:
        if drain:
            await drain_body(receive)
        error = BodyTooLarge(self.max_bytes)
        response = error_response(413, "invalid_data", str(error.detail), {"Connection": "close"})
        await response(scope, receive, send)


def credentials(headers: Headers) -> str | None:
    """The secret from ``Authorization: Bearer <key>`` or Basic ``<key>:`` (empty password)."""
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        return token
    if scheme.lower() == "basic" and token:
        try:
            decoded = base64.b64decode(token, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        if sep and user and not password:
            return user
    return None


class AdminAuth:
    def __init__(self, app: ASGIApp, gw: Groupwire) -> None:
        self.app = app
        self.gw = gw
        self.verified = VerifiedKeys(gw.engine, gw.settings.api_key_cache_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (
            path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")
        ):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        secret = credentials(headers)
        key: ApiKey | None = None
        if secret is not None:
            key = self.verified.lookup(secret)
            if key is None:
                generation = self.verified.generation
                key = await run_in_threadpool(authenticate, self.gw.engine, secret)
                if key is not None:
                    self.verified.remember(secret, key, generation)
        elif scope["method"] in READ_METHODS:  # the admin page's session cookie: reads only
            key = await run_in_threadpool(session_key, self.gw.engine, headers)
        if key is None:
            error = unauthorized()
            await error_response(401, error.type, error.message, error.headers)(
                scope, receive, send
            )
            return
        needed = required_scope(scope["method"], path)
        if not grants(key, needed):
            error = forbidden(needed)
            await error_response(403, error.type, error.message)(scope, receive, send)
            return
        _state(scope)["api_key"] = key
        await self.app(scope, receive, send)
