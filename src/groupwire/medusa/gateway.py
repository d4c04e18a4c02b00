"""The gateway: Groupwire's before-hooks in front of Medusa's Admin API.

A reverse proxy (an ASGI app, served by uvicorn: ``groupwire medusa gateway``). Medusa has no
hook on its customer-group workflows; the gateway gives them Groupwire's ``before_*`` hooks:

- the five customer-group and membership writes (``POST /admin/customer-groups``, ``POST`` and
  ``DELETE /admin/customer-groups/{id}``, ``POST /admin/customer-groups/{id}/customers``,
  ``POST /admin/customers/{id}/customer-groups``) are read, put to the hooks with the change
  objects Groupwire's own operation would build (:meth:`Service.run_before_hook`), and then
  forwarded, with the body the hooks left (a veto answers in Medusa's error shape and never
  reaches Medusa);
- everything else is streamed through untouched, both ways.

The old values update, delete and removal hooks see come from Groupwire's copy of Medusa, the
store that ``groupwire medusa capture`` keeps. A row the copy lacks is waited for (capture may
be a moment behind), then Medusa is asked whether it has it: if it has, the copy is behind and
the write is refused (503, nothing forwarded); if it has not, the write is what Medusa makes of
an unknown id (see :meth:`MedusaGateway._vet`). After-hooks and events are not the gateway's:
they come from capture, once, whichever path made the change.

The proxy is lean: one shared ``httpx.AsyncClient`` with keep-alive, no buffering of
requests or responses outside the five writes (and of those only when a hook is there to run).
"""

from __future__ import annotations

import json
import logging
import re
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import Message as MimeMessage
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import unquote

import anyio
import httpx
import qs_codec
from starlette.types import Message, Receive, Scope, Send

from groupwire.domain import events as ev
from groupwire.domain.changes import Context, GroupDraft, ProposedUpdate
from groupwire.domain.errors import HookRejected, InvalidData
from groupwire.domain.ids import new_id
from groupwire.domain.models import CustomerGroup
from groupwire.hooks.plugins import has_impls
from groupwire.service import BeforeHook, Service, merge_metadata
from groupwire.store import repository as repo

log = logging.getLogger("groupwire.medusa.gateway")

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
CREDENTIALS = frozenset({b"authorization", b"cookie"})
# A veto (``not_allowed``) and a hook's ``invalid_data`` answer 400, as Medusa answers both
# types of its own: a client cannot tell the gateway's refusal from Medusa's.
REFUSED_STATUS = 400
COPY_POLL = 0.05
# A refused body's rest is read and dropped before the 413 (as the Admin API's BodyLimit does).
LINGER_BYTES = 64 * 1024 * 1024
LINGER_SECONDS = 10.0

# Express routes case-insensitively and ignores one trailing slash; so do these (matched on
# the raw path, as Express matches it before decoding its parameters).
_SEGMENT = r"([^/?#]+)"
ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"^/admin/customer-groups/?$", re.I), "create_group"),
    ("POST", re.compile(rf"^/admin/customer-groups/{_SEGMENT}/?$", re.I), "update_group"),
    ("DELETE", re.compile(rf"^/admin/customer-groups/{_SEGMENT}/?$", re.I), "delete_group"),
    (
        "POST",
        re.compile(rf"^/admin/customer-groups/{_SEGMENT}/customers/?$", re.I),
        "group_customers",
    ),
    (
        "POST",
        re.compile(rf"^/admin/customers/{_SEGMENT}/customer-groups/?$", re.I),
        "customer_groups",
    ),
)
HOOKS_OF_ROUTE: dict[str, tuple[str, ...]] = {
    "create_group": ("before_create_customer_group",),
    "update_group": ("before_update_customer_group",),
    "delete_group": ("before_delete_customer_group", "before_remove_customer_from_group"),
    "group_customers": ("before_add_customer_to_group", "before_remove_customer_from_group"),
    "customer_groups": ("before_add_customer_to_group", "before_remove_customer_from_group"),
}
# body-parser's urlencoded parser (extended: qs) as Medusa's Express configures it
_QS = qs_codec.DecodeOptions(depth=32, parameter_limit=1000, list_limit=1000)


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


class CopyLacks(Exception):
    """Rows the hooks need are not in Groupwire's copy (yet): ``kind`` is ``customer_group``
    or ``customer``."""

    def __init__(self, kind: str, ids: list[str]) -> None:
        super().__init__(f"{kind} {', '.join(ids)} not in the copy")
        self.kind = kind
        self.ids = ids


class ForwardUntouched(Exception):
    """Medusa answers this write itself (it refuses it whole): send it on as it came."""


class TooLarge(Exception):
    """A write body over ``GatewayOptions.max_body``; ``drained`` says whether the rest of it
    was read (and dropped) to its end, so the 413 can be sent on an open connection."""

    def __init__(self, drained: bool) -> None:
        super().__init__("body too large")
        self.drained = drained


class ClientGone(Exception):
    """The client disconnected while its request body was being read."""


@dataclass(slots=True)
class Vetted:
    """A write the hooks let through: ``body`` the body to forward (None: the original)."""

    body: dict[str, Any] | None


@dataclass(slots=True)
class ParsedBody:
    raw: bytes
    value: dict[str, Any]


class MedusaGateway:
    """The ASGI app: ``MedusaGateway(service, GatewayOptions(upstream=...))``.

    ``service`` is Groupwire's service over the store capture keeps; its plugin manager holds
    the hooks. The shared HTTP client is opened here and closed at the server's shutdown
    (the ASGI lifespan) or by :meth:`aclose`.
    """

    def __init__(self, service: Service, options: GatewayOptions) -> None:
        self.service = service
        self.options = options
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
                    self._vet, route, id, body.value, context, frozenset(absent)
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
            except (HookRejected, InvalidData) as error:
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

    def _vet(
        self,
        route: str,
        id: str,
        body: dict[str, Any],
        context: Context,
        absent: frozenset[str],
    ) -> Vetted:
        """Build the hook calls of one write from its body and the copy, run them, and say
        what to forward (in a worker thread: the store and the hooks are synchronous).

        Ids that ``absent`` holds are known to be unknown to Medusa: the group or customer
        of the path (and a group or customer to add) makes Medusa refuse the whole request
        (``ForwardUntouched``); one to remove is no member, skipped as Groupwire skips it.
        """
        with self.service.engine.connect() as conn:
            if route == "create_group":
                return self._create(body, context)
            if route == "customer_groups":
                return self._customer_groups(conn, id, body, context, absent)
            group = repo.get_group(conn, id)
            if group is None:
                if id in absent:
                    raise ForwardUntouched
                raise CopyLacks("customer_group", [id])
            if route == "update_group":
                return self._update(group, body, context)
            if route == "delete_group":
                return self._delete(conn, group, context)
            return self._group_customers(conn, group, body, context, absent)

    def _run(self, name: str, context: Context, **arguments: Any) -> dict[str, Any]:
        return self.service.run_before_hook(BeforeHook(name, arguments), context=context).arguments

    def _create(self, body: dict[str, Any], context: Context) -> Vetted:
        name, metadata = body.get("name"), body.get("metadata")
        description = body.get("description")
        if not isinstance(name, str) or not isinstance(metadata, dict | None):
            raise ForwardUntouched  # Medusa's validation answers
        if not isinstance(description, str | None):
            raise ForwardUntouched
        draft = GroupDraft(name=name, description=description, metadata=metadata)
        before = (draft.name, draft.description, _copy(draft.metadata))
        try:
            self._run("before_create_customer_group", context, draft=draft)
        except InvalidData:
            if (draft.name, draft.description, draft.metadata) == before:
                raise ForwardUntouched from None  # the caller's own input: Medusa answers
            raise
        forwarded = _without_additional_data(body)
        for name_, value, old in zip(
            ("name", "description", "metadata"),
            (draft.name, draft.description, draft.metadata),
            before,
            strict=True,
        ):
            if value != old:
                forwarded[name_] = value
        return Vetted(forwarded)

    def _update(self, group: CustomerGroup, body: dict[str, Any], context: Context) -> Vetted:
        given = {k: body[k] for k in ev.GROUP_FIELDS if k in body}
        if "name" in given and not isinstance(given["name"], str):
            raise ForwardUntouched
        if not isinstance(given.get("metadata"), dict | None):
            raise ForwardUntouched
        values = dict(given)
        if "metadata" in values:
            values["metadata"] = merge_metadata(group.metadata, values["metadata"])
        update = ProposedUpdate(values=_copy(values))
        try:
            self._run("before_update_customer_group", context, group=group, update=update)
        except InvalidData:
            if update.values == values:
                raise ForwardUntouched from None
            raise
        forwarded = _without_additional_data(body)
        for name in ev.GROUP_FIELDS:
            if name not in update.values:
                forwarded.pop(name, None)
            elif name not in values or update.values[name] != values[name]:
                new = update.values[name]
                forwarded[name] = (
                    _metadata_patch(group.metadata, new)
                    if name == "metadata" and new is not None
                    else new
                )
        return Vetted(forwarded)

    def _delete(self, conn: Any, group: CustomerGroup, context: Context) -> Vetted:
        self._run("before_delete_customer_group", context, group=group)
        members = repo.member_ids(conn, group.id)
        if members:
            loaded = repo.get_customers(conn, members)
            self._run(
                "before_remove_customer_from_group",
                context,
                group=group,
                customers=[loaded[cid] for cid in members if cid in loaded],
                reason=ev.REASON_GROUP_DELETED,
            )
        return Vetted(None)

    def _group_customers(
        self,
        conn: Any,
        group: CustomerGroup,
        body: dict[str, Any],
        context: Context,
        absent: frozenset[str],
    ) -> Vetted:
        add, remove = _ids(body, "add"), _ids(body, "remove")
        if add is None or remove is None or set(add) & set(remove):
            raise ForwardUntouched
        dropped: set[str] = set()
        present = repo.members_among(conn, group.id, add + remove)
        joining = [cid for cid in add if cid not in present]
        if joining:
            loaded = repo.get_customers(conn, joining)
            missing = [cid for cid in joining if cid not in loaded]
            if any(cid in absent for cid in missing):
                raise ForwardUntouched  # Medusa refuses the whole batch
            if missing:
                raise CopyLacks("customer", missing)
            kept = self._run(
                "before_add_customer_to_group",
                context,
                group=group,
                customers=[loaded[cid] for cid in joining],
            )["customers"]
            dropped |= set(joining) - {c.id for c in kept}
        unknown = [cid for cid in remove if cid not in absent]
        if unknown:
            loaded_removed = repo.get_customers(conn, unknown)
            missing = [cid for cid in unknown if cid not in loaded_removed]
            if missing:
                raise CopyLacks("customer", missing)
        leaving = [cid for cid in remove if cid in present]
        if leaving:
            loaded = repo.get_customers(conn, leaving)
            kept = self._run(
                "before_remove_customer_from_group",
                context,
                group=group,
                customers=[loaded[cid] for cid in leaving if cid in loaded],
                reason=ev.REASON_REMOVED,
            )["customers"]
            dropped |= set(leaving) - {c.id for c in kept}
        return Vetted(_batch(body, add, remove, dropped))

    def _customer_groups(
        self,
        conn: Any,
        customer_id: str,
        body: dict[str, Any],
        context: Context,
        absent: frozenset[str],
    ) -> Vetted:
        add, remove = _ids(body, "add"), _ids(body, "remove")
        if add is None or remove is None or set(add) & set(remove):
            raise ForwardUntouched
        customer = repo.get_customer(conn, customer_id)
        if customer is None:
            if customer_id in absent:
                raise ForwardUntouched
            raise CopyLacks("customer", [customer_id])
        groups = _groups(conn, add + remove)
        missing = [gid for gid in add + remove if gid not in groups and gid not in absent]
        if missing:
            raise CopyLacks("customer_group", missing)
        if any(gid in absent for gid in add):
            raise ForwardUntouched  # Medusa refuses the whole request
        current = set(repo.group_ids_of(conn, customer.id))
        dropped: set[str] = set()
        for gid in sorted(set(add + remove) - set(absent)):
            group = groups[gid]
            if gid in add and gid not in current:
                hook, reason = "before_add_customer_to_group", {}
            elif gid in remove and gid in current:
                hook, reason = "before_remove_customer_from_group", {"reason": ev.REASON_REMOVED}
            else:
                continue
            kept = self._run(hook, context, group=group, customers=[customer], **reason)
            if not kept["customers"]:
                dropped.add(gid)
        return Vetted(_batch(body, add, remove, dropped))

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


# --- helpers -----------------------------------------------------------------------------------


def _route(scope: Scope) -> tuple[str, str] | None:
    method = scope["method"]
    path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    for route_method, pattern, name in ROUTES:
        if method == route_method:
            match = pattern.match(path)
            if match:
                return name, unquote(match.group(1)) if match.groups() else ""
    return None


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope["headers"]}


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value else None


def _upstream_headers(
    scope: Scope, replace: dict[bytes, bytes], drop: frozenset[bytes]
) -> list[tuple[bytes, bytes]]:
    """The request's headers for Medusa: hop-by-hop ones and ``Host`` dropped (httpx sets
    Medusa's), ``X-Forwarded-For/-Proto/-Host`` set, ``replace`` applied."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    connection = {
        token.strip().lower()
        for name, value in headers
        if name == b"connection"
        for token in value.split(b",")
    }
    skip = HOP_BY_HOP | connection | drop | replace.keys() | {b"host", b"x-forwarded-for"}
    out = [(name, value) for name, value in headers if name not in skip]
    present = {name for name, _ in out}
    forwarded_for = [value for name, value in headers if name == b"x-forwarded-for"]
    client = scope.get("client")
    if client:
        forwarded_for.append(str(client[0]).encode())
    if forwarded_for:
        out.append((b"x-forwarded-for", b", ".join(forwarded_for)))
    # A proxy in front of this one (TLS ends there) has said these already: keep its word.
    host = dict(headers).get(b"host")
    if host and b"x-forwarded-host" not in present:
        out.append((b"x-forwarded-host", host))
    if b"x-forwarded-proto" not in present:
        out.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
    out.extend(replace.items())
    return out


def _downstream_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    connection = {
        token.strip().lower()
        for name, value in raw
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    skip = HOP_BY_HOP | connection
    return [(name.lower(), value) for name, value in raw if name.lower() not in skip]


def _request_body(scope: Scope, receive: Receive) -> AsyncIterator[bytes] | None:
    """The request body as a stream, or None when the request has none."""
    headers = scope["headers"]
    has_body = any(
        (name == b"content-length" and value.strip() not in (b"", b"0"))
        or name == b"transfer-encoding"
        for name, value in headers
    )
    return _stream(receive) if has_body else None


async def _stream(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone  # abandon the upstream request
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


async def _replay(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _replay_or_none(data: bytes) -> AsyncIterator[bytes] | None:
    return _replay(data) if data else None


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            more = message.get("more_body", False)
            raise TooLarge(drained=not more or await _drain(receive))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _drain(receive: Receive) -> bool:
    """Read and drop the rest of a refused body (up to ``LINGER_BYTES`` and
    ``LINGER_SECONDS``) before the 413: a client writing its whole request before it reads
    could otherwise see a connection reset instead of the answer. True once the body ended."""
    dropped = 0
    with anyio.move_on_after(LINGER_SECONDS):
        while True:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return True
            dropped += len(message.get("body", b""))
            if dropped > LINGER_BYTES:
                return False
    return False


def _parse(raw: bytes, headers: dict[bytes, bytes]) -> ParsedBody | None:
    """The body as Medusa's Express reads it (JSON or urlencoded, gzip or deflate allowed);
    None when it does not read as an object."""
    content_type = _header(headers, b"content-type")
    if not content_type:
        return ParsedBody(raw, {}) if not raw else None
    mime = MimeMessage()
    mime["content-type"] = content_type
    kind = mime.get_content_type()
    charset = mime.get_param("charset") or "utf-8"
    encoding = (_header(headers, b"content-encoding") or "identity").strip().lower()
    try:
        data = raw
        if encoding == "gzip":
            data = zlib.decompress(raw, 16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            data = zlib.decompress(raw)
        elif encoding != "identity":
            return None
        text = data.decode(str(charset))
        if kind == "application/json":
            value = json.loads(text) if text.strip() else {}
        elif kind == "application/x-www-form-urlencoded":
            value = qs_codec.decode(text, _QS)
        else:
            return ParsedBody(raw, {}) if not raw else None
    except (ValueError, LookupError, zlib.error):
        return None
    return ParsedBody(raw, value) if isinstance(value, dict) else None


def _additional_data(body: dict[str, Any]) -> dict[str, Any] | None:
    data = body.get("additional_data")
    return data if isinstance(data, dict) else None


def _without_additional_data(body: dict[str, Any]) -> dict[str, Any]:
    """Medusa refuses ``additional_data`` on these routes; Groupwire hands it to the hooks."""
    return {k: v for k, v in body.items() if k != "additional_data"}


def _ids(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(i, str) and i for i in value):
        return None
    return list(dict.fromkeys(value))


def _batch(
    body: dict[str, Any], add: list[str], remove: list[str], dropped: set[str]
) -> dict[str, Any]:
    forwarded = _without_additional_data(body)
    if dropped:
        for name in ("add", "remove"):
            if name in forwarded:
                forwarded[name] = [i for i in forwarded[name] if i not in dropped]
    return forwarded


def _groups(conn: Any, ids: list[str]) -> dict[str, CustomerGroup]:
    found: dict[str, CustomerGroup] = {}
    for gid in dict.fromkeys(ids):
        group = repo.get_group(conn, gid)
        if group is not None:
            found[gid] = group
    return found


def _metadata_patch(current: dict[str, Any] | None, wanted: dict[str, Any]) -> dict[str, Any]:
    """The body's metadata that turns ``current`` into ``wanted`` under Medusa's merge (keys
    set, a key set to "" removed)."""
    patch = {k: v for k, v in wanted.items() if (current or {}).get(k, _MISSING) != v}
    patch.update({k: "" for k in (current or {}) if k not in wanted})
    return patch


_MISSING = object()


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value)) if value is not None else None


async def _unreachable(send: Send, upstream: httpx.URL, error: Exception) -> None:
    log.warning("Medusa at %s unreachable: %r", upstream, error)
    await _answer(
        send, 502, "unexpected_state", f"Medusa could not be reached ({type(error).__name__})"
    )


async def _answer(
    send: Send,
    status: int,
    type: str,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """An answer of the gateway's own, in Medusa's error shape."""
    body = json.dumps({"type": type, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


__all__ = ["GatewayOptions", "MedusaGateway"]
