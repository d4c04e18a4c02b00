"""The gateway's options and its ASGI app: a request's way through the gateway (a hooked write
read, vetted, then forwarded or refused; anything else streamed through), asking Medusa with
the caller's credentials, and forwarding over one shared ``httpx.AsyncClient``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy

import anyio
import httpx
from starlette.types import Receive, Scope, Send

from groupwire.domain.changes import Context
from groupwire.domain.errors import HookRejected, InvalidData, NotAllowed
from groupwire.domain.ids import new_id
from groupwire.hooks.plugins import has_impls
from groupwire.medusa.gateway.answers import _answer, _unreachable
from groupwire.medusa.gateway.body import (
    ClientGone,
    ParsedBody,
    TooLarge,
    _parse,
    _read_body,
    _replay,
    _replay_or_none,
    _request_body,
)
from groupwire.medusa.gateway.headers import (
    _downstream_headers,
    _header,
    _headers,
    _upstream_headers,
)
from groupwire.medusa.gateway.routes import HOOKS_OF_ROUTE, _route
from groupwire.medusa.gateway.vetting import CopyLacks, ForwardUntouched, Vetter, _additional_data
from groupwire.service import Service

log = logging.getLogger("groupwire.medusa.gateway")

CREDENTIALS = frozenset({b"authorization", b"cookie"})
# A veto (``not_allowed``) and a hook's ``invalid_data`` answer 400, as Medusa answers both
# types of its own: a client cannot tell the gateway's refusal from Medusa's.
REFUSED_STATUS = 400
COPY_POLL = 0.05


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    """``upstream``: Medusa's base URL. ``copy_wait``: seconds to wait for capture to bring a
    row the hooks need. ``max_body``: largest write body read for the hooks (a larger one is
    refused with 413). ``timeout``: seconds to wait for Medusa (connect, each read/write)."""

    upstream: str
    copy_wait: float = 2.0
    max_body: int = 16 * 1024 * 1024
    timeout: float = 120.0
    max_connections: int = 100


class MedusaGateway:
    """The ASGI app: ``MedusaGateway(service, GatewayOptions(upstream=...))``.

    ``service`` is Groupwire's service over the store capture keeps; its plugin manager holds
    the hooks. The shared HTTP client is opened here and closed at the server's shutdown
    (the ASGI lifespan) or by :meth:`aclose`.
    """

    def __init__(self, service: Service, options: GatewayOptions) -> None:
        self.service = service
        self.options = options
        self.vetter = Vetter(service)
        self.upstream = httpx.URL(options.upstream.rstrip("/"))
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(options.timeout, connect=min(options.timeout, 10.0)),
            limits=httpx.Limits(
                max_connections=options.max_connections,
                max_keepalive_connections=options.max_connections,
                keepalive_expiry=4.0,  # below Node's 5 s keep-alive: never reuse a closing one
            ),
            follow_redirects=False,
            trust_env=False,
            # Never keep a response's cookies: they belong to the client that asked.
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    # --- ASGI -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets: Medusa's Admin API has none
            return
        route = _route(scope)
        try:
            if route is not None and self._hooked(route[0]):
                await self._write(scope, receive, send, *route)
            else:
                await self._forward(scope, _request_body(scope, receive), send)
        except ClientGone:
            return

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _hooked(self, route: str) -> bool:
        hooks = self.service.plugins.hook
        return any(has_impls(getattr(hooks, name)) for name in HOOKS_OF_ROUTE[route])

    # --- the five writes --------------------------------------------------------------------

    async def _write(self, scope: Scope, receive: Receive, send: Send, route: str, id: str) -> None:
        try:
            await self._judge(scope, receive, send, route, id)
        except httpx.TransportError as error:  # asking Medusa failed before anything was sent
            await _unreachable(send, self.upstream, error)

    async def _judge(self, scope: Scope, receive: Receive, send: Send, route: str, id: str) -> None:
        try:
            raw = await _read_body(receive, self.options.max_body)
        except TooLarge as error:
            await _answer(
                send,
                413,
                "invalid_data",
                f"The gateway reads customer-group writes of at most "
                f"{self.options.max_body:,} bytes for Groupwire's hooks",
                [] if error.drained else [(b"connection", b"close")],
            )
            return
        headers = _headers(scope)
        body = _parse(raw, headers) if route != "delete_group" else ParsedBody(raw, {})
        if body is None:  # Medusa cannot read it either: it answers, nothing changes
            await self._forward(scope, _replay_or_none(raw), send)
            return
        context = Context(
            correlation_id=_header(headers, b"x-request-id") or new_id("gw"),
            additional_data=_additional_data(body.value),
        )
        absent: set[str] = set()
        deadline = time.monotonic() + self.options.copy_wait
        while True:
            try:
                vetted = await anyio.to_thread.run_sync(
                    self.vetter.vet, route, id, body.value, context, frozenset(absent)
                )
                break
            except CopyLacks as lack:
                if time.monotonic() < deadline:
                    await anyio.sleep(COPY_POLL)
                    continue
                known = await self._medusa_ids(scope, lack.kind, lack.ids)
                if known is None:  # Medusa refuses the caller's credentials: it answers
                    await self._forward(scope, _replay_or_none(raw), send)
                    return
                if known:
                    log.warning("the copy lacks %s %s that Medusa has", lack.kind, known)
                    await _answer(
                        send,
                        503,
                        "unexpected_state",
                        f"Groupwire's copy of Medusa has not caught up with {lack.kind} "
                        f"{', '.join(sorted(known))}: the hooks cannot judge this change "
                        "yet and nothing was sent to Medusa. Retry in a moment.",
                        [(b"retry-after", b"1")],
                    )
                    return
                absent.update(lack.ids)
            except ForwardUntouched:
                await self._forward(scope, _replay_or_none(raw), send)
                return
            except (HookRejected, InvalidData, NotAllowed) as error:
                if await self._credentials_refused(scope):
                    await self._forward(scope, _replay_or_none(raw), send)  # Medusa's 401 answers
                    return
                await _answer(send, REFUSED_STATUS, error.type, error.message)
                return
        if vetted.body is None or vetted.body == body.value:
            await self._forward(scope, _replay_or_none(raw), send)
            return
        encoded = json.dumps(vetted.body, ensure_ascii=False, separators=(",", ":")).encode()
        await self._forward(
            scope,
            _replay(encoded),
            send,
            replace={
                b"content-type": b"application/json",
                b"content-length": str(len(encoded)).encode(),
            },
            drop=frozenset({b"content-encoding"}),
        )

    # --- asking Medusa ----------------------------------------------------------------------

    async def _medusa_ids(self, scope: Scope, kind: str, ids: list[str]) -> set[str] | None:
        """The ``ids`` Medusa has, asked with the caller's credentials (None: refused)."""
        path = "/admin/customer-groups" if kind == "customer_group" else "/admin/customers"
        params = [("fields", "id"), ("limit", str(len(ids)))] + [("id[]", i) for i in ids]
        response = await self._ask(scope, path, params)
        if response.status_code in (401, 403):
            return None
        if response.status_code != 200:  # cannot tell: assume it has them (refuse, retry)
            log.warning("asking Medusa for %s %s: %s", kind, ids, response.status_code)
            return set(ids)
        key = "customer_groups" if kind == "customer_group" else "customers"
        return {str(row["id"]) for row in response.json().get(key, [])}

    async def _credentials_refused(self, scope: Scope) -> bool:
        """Whether Medusa would refuse the caller: a veto is no answer for a stranger."""
        if not any(name in CREDENTIALS for name, _ in scope["headers"]):
            return True
        response = await self._ask(
            scope, "/admin/customer-groups", [("fields", "id"), ("limit", "1")]
        )
        return response.status_code in (401, 403)

    async def _ask(self, scope: Scope, path: str, params: list[tuple[str, str]]) -> httpx.Response:
        headers = [(k, v) for k, v in scope["headers"] if k in CREDENTIALS]
        request = httpx.Request(
            "GET", self.upstream.join(path).copy_with(params=params), headers=headers
        )
        return await self.client.send(request)

    # --- proxying ---------------------------------------------------------------------------

    async def _forward(
        self,
        scope: Scope,
        body: AsyncIterator[bytes] | None,
        send: Send,
        *,
        replace: dict[bytes, bytes] | None = None,
        drop: frozenset[bytes] = frozenset(),
    ) -> None:
        """Send the request to Medusa and stream its answer back (Medusa down: a 502)."""
        replace = replace or {}
        request = httpx.Request(
            scope["method"],
            self._url(scope),
            headers=_upstream_headers(scope, replace, drop),
            content=body,
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TimeoutException as error:
            await _answer(
                send, 504, "unexpected_state", f"Medusa did not answer in time: {error!r}"
            )
            return
        except httpx.TransportError as error:
            await _unreachable(send, self.upstream, error)
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": _downstream_headers(response.headers.raw),
                }
            )
            async for chunk in response.aiter_raw():
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    def _url(self, scope: Scope) -> httpx.URL:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string", b"")
        base = self.upstream.raw_path.rstrip(b"/") if self.upstream.raw_path != b"/" else b""
        return self.upstream.copy_with(raw_path=base + raw_path + (b"?" + query if query else b""))
