"""``Idempotency-Key``: a write retried with the same key changes nothing and gets the same answer.

An ASGI middleware running after authentication, on ``/admin`` writes (the header is ignored
on reads). For a request with a key it:

1. refuses a malformed key (400 ``invalid_data``: 1 to 255 printable ASCII characters);
2. computes the request's fingerprint (method, path, query, body; JSON bodies compared as
   data, so key order and spacing do not matter);
3. runs the route with the key and fingerprint in ``request.state``; the route's ``Context``
   carries them to the service, whose unit of work looks the key up and claims it in the
   change's own transaction (:mod:`groupwire.store.idempotency_keys`): a key already used
   makes the service write nothing and raise. Routes that write outside the service (API
   keys, webhooks, mail settings) have the key looked up here, before they run;
4. stores a 2xx answer on the key before sending it (a client that got an answer can count
   on its replay). Errors are not stored: a 4xx or 5xx raised before the commit wrote
   nothing, so a retry executes again. Any other answer to a keyed request is replaced by
   what the key's record says, when a committed change holds the key (in the caller's scope,
   the API key): the stored answer for the same fingerprint is replayed
   (``Idempotent-Replayed: true``), another fingerprint is a 422 ``not_allowed``, and a
   change committed whose answer is not stored yet is waited for briefly, then answered 409
   ``conflict`` ("already applied").
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi.dependencies.models import Dependant
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from groupwire.api.caller import KeyedRequest, change_context
from groupwire.api.errors import error_response
from groupwire.api.middleware import READ_METHODS
from groupwire.app import Groupwire
from groupwire.store import idempotency_keys
from groupwire.store.idempotency_keys import Answer, KeyRecord

HEADER = "idempotency-key"
REPLAYED_HEADER = "idempotent-replayed"
STORED_HEADERS = ("content-type", "etag")
VALID_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")
WAIT_FOR_ANSWER = 2.0
"""Seconds a request waits for the stored answer of a committed change under its key."""
_POLL = 0.02


class IdempotentRequests:
    def __init__(self, app: ASGIApp, gw: Groupwire) -> None:
        self.app = app
        self.gw = gw
        self._claims_in_service: dict[int, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        api_key = scope.get("state", {}).get("api_key")
        if scope["type"] != "http" or scope["method"] in READ_METHODS or api_key is None:
            await self.app(scope, receive, send)
            return
        key = Headers(scope=scope).get(HEADER)
        in_service = self._route_writes_through_service(scope) if key is not None else None
        if key is None or in_service is None:  # no key, or no route (the app answers 404/405)
            await self.app(scope, receive, send)
            return
        if not VALID_KEY.match(key):
            response = error_response(
                400,
                "invalid_data",
                "Invalid request: Idempotency-Key must be 1 to 255 printable ASCII characters",
            )
            await response(scope, receive, send)
            return
        body, receive = await _read_body(receive)
        fingerprint = request_fingerprint(scope, body)
        owner = api_key.id
        if not in_service:
            found = await self._settled(owner, key)
            if found is not None:
                await self._answer_from(found, key, fingerprint)(scope, receive, send)
                return

        scope["state"]["idempotency"] = KeyedRequest(key, fingerprint)
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            await self._finish(start, b"".join(chunks), owner, key, fingerprint, scope, send)

        await self.app(scope, receive, capture)

    async def _finish(
        self,
        start: Message,
        body: bytes,
        owner: str,
        key: str,
        fingerprint: str,
        scope: Scope,
        send: Send,
    ) -> None:
        status = int(start["status"])
        if 200 <= status < 300:
            headers = Headers(raw=start.get("headers", []))
            answer = Answer(
                status,
                {name: headers[name] for name in STORED_HEADERS if name in headers},
                body.decode("utf-8", "replace"),
            )
            await run_in_threadpool(
                idempotency_keys.store_answer,
                self.gw.engine,
                owner,
                key,
                fingerprint,
                answer,
                datetime.now(UTC),
                self.gw.settings.idempotency_key_ttl,
            )
        else:  # the key may be used by a committed change (a retry, a concurrent duplicate)
            found = await self._settled(owner, key)
            if found is not None:
                await self._answer_from(found, key, fingerprint)(scope, _no_body, send)
                return
        await send(start)
        await send({"type": "http.response.body", "body": body})

    def _route_writes_through_service(self, scope: Scope) -> bool | None:
        """Whether the route changes state through the service (it takes a ``ChangeContext``),
        whose unit of work checks and claims the key: no look-up is needed before it runs.
        None when no route serves this method and path."""
        router = getattr(scope.get("app"), "router", None)
        for route in getattr(router, "routes", ()):
            match, _ = route.matches(scope)
            if match is Match.FULL:
                known = self._claims_in_service.get(id(route))
                if known is None:
                    dependant = getattr(route, "dependant", None)
                    known = dependant is not None and _depends_on(dependant, change_context)
                    self._claims_in_service[id(route)] = known
                return known
        return None

    async def _settled(self, owner: str, key: str) -> KeyRecord | None:
        """The key's record, after waiting up to ``WAIT_FOR_ANSWER`` for its answer when
        the change is committed but its answer not stored yet."""
        deadline = time.monotonic() + WAIT_FOR_ANSWER
        while True:
            found = await run_in_threadpool(
                idempotency_keys.lookup, self.gw.engine, owner, key, datetime.now(UTC)
            )
            if found is None or found.answer is not None or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(_POLL)

    def _answer_from(self, found: KeyRecord, key: str, fingerprint: str) -> Response:
        if found.fingerprint != fingerprint:
            return error_response(
                422,
                "not_allowed",
                f"Idempotency-Key {key!r} was already used for a different request; "
                "use a new key for a new request",
            )
        if found.answer is None:
            return error_response(
                409,
                "conflict",
                f"A request with Idempotency-Key {key!r} was already applied, but its response "
                "is not available; read the resource to see its state",
            )
        answer = found.answer
        return Response(
            answer.body,
            status_code=answer.status,
            headers={**answer.headers, REPLAYED_HEADER: "true"},
        )


def request_fingerprint(scope: Scope, body: bytes) -> str:
    """Method, path, query and body; a JSON body counts as data (key order, spacing aside)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
        content = b"json:" + canonical.encode("utf-8")
    except ValueError:
        content = b"raw:" + body
    return idempotency_keys.fingerprint(
        scope["method"], scope.get("path", ""), scope.get("query_string", b""), content
    )


def _depends_on(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return any(sub.call is call or _depends_on(sub, call) for sub in dependant.dependencies)


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    """The whole request body, and a ``receive`` that hands it to the app again."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
