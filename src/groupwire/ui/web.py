"""Plumbing shared by the admin page's routes: templates, the signed-in session, forms, errors.

Every page route is a ``UiRoute``: it turns the errors a route raises into HTML — the
domain's ``{type, message}`` shown in the page with the status the JSON API would use, a
missing session into a redirect to the sign-in form, a bad CSRF token into a 403 page.
Forms are ``application/x-www-form-urlencoded`` (no multipart parser is needed); every
``POST`` carries the session's CSRF token.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from groupwire.api.errors import ApiError, describe_validation_errors, forbidden, status_of
from groupwire.app import Groupwire
from groupwire.auth.keys import grants
from groupwire.domain.changes import Context
from groupwire.domain.errors import GroupwireError, InvalidData
from groupwire.domain.events import ALL_TYPES
from groupwire.ui.sessions import COOKIE, Session, csrf_matches, find_session

PREFIX = "/app"
FLASH_COOKIE = "groupwire_flash"
MAX_FORM_BYTES = 1_000_000
SECURITY_HEADERS = {
    # Everything the page needs is served from here: no inline script, no other origin.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

_env = Environment(
    loader=PackageLoader("groupwire.ui", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    media_type: str
    version: str


def _load_static() -> dict[str, StaticFile]:
    types = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
    found: dict[str, StaticFile] = {}
    for entry in (resources.files("groupwire.ui") / "static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in types:
            body = entry.read_bytes()
            found[entry.name] = StaticFile(
                body, types[suffix], hashlib.sha256(body).hexdigest()[:12]
            )
    return found


STATIC = _load_static()


def static_url(name: str) -> str:
    """The URL of a bundled file, versioned by its content (so it can be cached for long)."""
    return f"{PREFIX}/static/{name}?v={STATIC[name].version}"


def json_text(value: Any) -> str:
    return "" if value is None else json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


_env.globals.update(static_url=static_url, prefix=PREFIX, event_types=ALL_TYPES)
_env.filters["json"] = json_text
_env.filters["compact"] = lambda value: json.dumps(value, ensure_ascii=False, sort_keys=True)


class SignInRequired(Exception):
    """No live session: the browser is sent to the sign-in form."""


class CsrfRejected(Exception):
    """A form came back without the session's CSRF token."""


@dataclass(slots=True)
class Form:
    """A posted url-encoded form; ``get`` gives the last value, ``getlist`` all of them."""

    pairs: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str, default: str = "") -> str:
        values = self.getlist(name)
        return values[-1] if values else default

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]


async def read_form(request: Request) -> Form:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise _invalid("Forms must be posted as application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise _invalid("The form is too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("The form is not valid UTF-8") from None
    pairs = parse_qsl(text, keep_blank_values=True)
    if any("\x00" in key + value for key, value in pairs):
        raise _invalid("NUL characters are not allowed")
    return Form(pairs)


def _invalid(message: str) -> GroupwireError:
    return InvalidData(message)


def session_of(request: Request) -> Session:
    """The signed-in session (a dependency of every page but the sign-in form)."""
    cached = getattr(request.state, "ui_session", None)
    if cached is not None:
        return cached
    session = find_session(gw_of(request).engine, request.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired()
    request.state.ui_session = session
    return session


async def posted_form(request: Request) -> Form:
    """The form of a change: signed in, CSRF token checked. (Scopes: see :func:`need`.)"""
    session = await run_in_threadpool(session_of, request)
    form = await read_form(request)
    if not csrf_matches(session, form.get("csrf_token")):
        raise CsrfRejected()
    return form


def need(session: Session, scope: str) -> None:
    """Refuse a change the session's key has no scope for, as the API would (403)."""
    if not grants(session.key, scope):
        raise forbidden(scope)


def gw_of(request: Request) -> Groupwire:
    return request.app.state.gw


def context_of(request: Request, session: Session) -> Context:
    """Copied into every event of a change made from the page, as the API does."""
    return Context(actor=session.key.id, correlation_id=getattr(request.state, "request_id", None))


def render(
    request: Request,
    template: str,
    *,
    status_code: int = 200,
    error: GroupwireError | None = None,
    **values: Any,
) -> HTMLResponse:
    """A page of the admin UI, with the session, a pending notice and an error, if any."""
    session = getattr(request.state, "ui_session", None)
    notice = request.cookies.get(FLASH_COOKIE)
    page = _env.get_template(template).render(
        request=request,
        session=session,
        notice=unquote(notice)[:500] if notice else None,
        error={"type": error.type, "message": error.message} if error else None,
        **values,
    )
    response = HTMLResponse(page, status_code=status_code, headers=SECURITY_HEADERS)
    if notice:
        response.delete_cookie(FLASH_COOKIE, path=PREFIX)
    return response


def redirect(path: str, *, notice: str | None = None, **query: Any) -> RedirectResponse:
    """Post/redirect/get: back to a page, with a one-time notice shown there."""
    given = {k: v for k, v in query.items() if v not in (None, "")}
    url = f"{PREFIX}{path}" + (f"?{urlencode(given)}" if given else "")
    response = RedirectResponse(url, status_code=303)
    if notice:
        response.set_cookie(
            FLASH_COOKIE, quote(notice[:500]), path=PREFIX, httponly=True, samesite="strict"
        )
    return response


def error_page(request: Request, error: GroupwireError) -> HTMLResponse:
    return render(request, "error.html", status_code=status_of(error), error=error)


class UiRoute(APIRoute):
    """A page route: errors become HTML pages, a missing session a redirect to sign in."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                target = request.url.path if request.method == "GET" else f"{PREFIX}/"
                return RedirectResponse(
                    f"{PREFIX}/login?{urlencode({'next': target})}", status_code=303
                )
            except CsrfRejected:
                return render(
                    request,
                    "error.html",
                    status_code=403,
                    error=_rejected("The form's security token is missing or stale; reload."),
                )
            except RequestValidationError as error:
                return error_page(request, _invalid(describe_validation_errors(error.errors())))
            except GroupwireError as error:
                return error_page(request, error)

        return handle


def _rejected(message: str) -> GroupwireError:
    return ApiError("forbidden", message)
