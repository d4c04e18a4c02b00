"""``Idempotency-Key``: a write retried with the same key changes nothing and gets the same answer.

An ASGI middleware running after authentication, on ``/admin`` writes (the header is ignored
on reads). For a request with a key it:

1. marks a malformed key, which the route refuses (400 ``invalid_data``: 1 to 255 printable
   ASCII characters; a method or path that no route serves stays a 405 or 404);
2. computes the request's fingerprint (method, path, query, body; JSON bodies compared as
   data, so key order and spacing do not matter) and puts key and fingerprint in
   ``request.state``;
3. runs the route. A route changing state through the service (it takes a ``ChangeContext``)
   hands the key to the service, whose unit of work claims it first thing in the change's
   transaction and writes the route's answer (status, headers, body bytes) on it just
   before the commit (:mod:`groupwire.api.answers`): key, change and answer commit together,
   and a key already used makes the service write nothing and raise ``AlreadyApplied`` with
   the stored answer, which :mod:`groupwire.api.errors` replays (``Idempotent-Replayed:
   true``). A concurrent duplicate waits on the claimed row and then finds that answer.
   Routes that write outside the service (API keys, webhooks, mail settings) take
   :data:`OUTSIDE_SERVICE`, which looks the key up before they run, and their 2xx answer is
   stored here after it is rendered, in one statement of its own: for them alone, a crash
   between their change and that statement leaves the key unused, so a retry runs again;
4. answers an error (a 4xx or 5xx: nothing was written, or the change committed and the
   error came before the service, for instance a retried ``If-Match`` whose version moved
   on) with what the key's record says when a committed change holds the key in the caller's
   scope: its stored answer for the same fingerprint, a 422 ``not_allowed`` for another.
   Otherwise the error stands, and a retry executes again. An answer that no route gave
   (404 or 405 from the router) is never replaced: such a request uses no key.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from groupwire.api.answers import as_response, stored
from groupwire.api.caller import MALFORMED, ROUTED, KeyedRequest, keyed_request
from groupwire.api.errors import KEY_REUSED_STATUS, error_response
from groupwire.api.middleware import READ_METHODS
from groupwire.app import Groupwire
from groupwire.domain.changes import Answer
from groupwire.domain.errors import AlreadyApplied, IdempotencyKeyReused
from groupwire.store import idempotency_keys
from groupwire.store.idempotency_keys import KeyRecord

HEADER = b"idempotency-key"
VALID_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")
_STORE_AFTER = "idempotency_store_after"
"""``request.state`` flag set by :data:`OUTSIDE_SERVICE`: the answer is stored after the route."""


class IdempotentRequests:
    def __init__(self, app: ASGIApp, gw: Groupwire) -> None:
        self.app = app
        self.gw = gw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in READ_METHODS:
            await self.app(scope, receive, send)
            return
        state = scope.get("state", {})
        api_key = state.get("api_key")
        key = _header(scope) if api_key is not None else None
        if key is None:
            await self.app(scope, receive, send)
            return
        if not VALID_KEY.match(key):
            # Refused by the route's own dependency (``keyed_request``): a method or path
            # that no route serves is still answered 405 or 404 by the router.
            state[MALFORMED] = True
            await self.app(scope, receive, send)
            return
        body, receive = await _read_body(receive)
        keyed = KeyedRequest(key, request_fingerprint(scope, body))
        state["idempotency"] = keyed
        start: Message | None = None
        chunks: list[bytes] = []

        async def settle(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if not state.get(ROUTED):  # no route took it (404, 405): the key is not used
                    await send(message)
                elif 200 <= message["status"] < 300 and not state.get(_STORE_AFTER):
                    await send(message)  # the service stored it with the change, or a replay
                else:
                    start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                response = await self._settled(start, b"".join(chunks), api_key.id, keyed)
                await response(scope, _no_body, send)

        await self.app(scope, receive, settle)

    async def _settled(
        self, start: Message, body: bytes, owner: str, keyed: KeyedRequest
    ) -> Response:
        """The answer to send for a response held back: a 2xx of a route outside the service,
        stored now; an error, replaced by the key's record when a committed change holds it."""
        response = Response(body, status_code=start["status"])
        response.raw_headers = list(start.get("headers", []))
        if 200 <= response.status_code < 300:
            await run_in_threadpool(
                idempotency_keys.store_answer,
                self.gw.engine,
                owner,
                keyed.key,
                keyed.fingerprint,
                stored(response),
                datetime.now(UTC),
                self.gw.settings.idempotency_key_ttl,
            )
            return response
        found = await run_in_threadpool(_lookup, self.gw, owner, keyed.key)
        return response if found is None else _answer_from(found, keyed, response)


async def outside_service(request: Request) -> None:
    """A dependency of the routes that write outside the service: a key already used by a
    committed request is answered (replayed, or refused when used for another request)
    before the route runs; otherwise the route's 2xx answer is stored once it is sent."""
    keyed = keyed_request(request.state)
    if keyed is None or request.method in READ_METHODS:
        return
    gw: Groupwire = request.app.state.gw
    owner = request.state.api_key.id
    found = await run_in_threadpool(_lookup, gw, owner, keyed.key)
    if found is None:
        setattr(request.state, _STORE_AFTER, True)
        return
    if found.fingerprint != keyed.fingerprint:
        raise IdempotencyKeyReused(keyed.key)
    raise AlreadyApplied(keyed.key, found.answer)


OUTSIDE_SERVICE = Depends(outside_service)


def _lookup(gw: Groupwire, owner: str, key: str) -> KeyRecord | None:
    return idempotency_keys.lookup(gw.engine, owner, key, datetime.now(UTC))


def _answer_from(found: KeyRecord, keyed: KeyedRequest, response: Response) -> Response:
    if found.fingerprint != keyed.fingerprint:
        error = IdempotencyKeyReused(keyed.key)
        return error_response(KEY_REUSED_STATUS, error.type, error.message)
    answer: Answer | None = found.answer
    return response if answer is None else as_response(answer, replay=True)


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


def _header(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == HEADER:
            return str(value.decode("latin-1"))
    return None


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
