"""Signing in and out of the admin page, its start page and its bundled static files.

The sign-in form is protected from cross-site posting by a double-submitted token (a cookie
and a hidden field that must match), since no session exists yet to hold one.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from groupwire.api.errors import ApiError
from groupwire.ui.sessions import COOKIE, LIFETIME, sign_in, sign_out
from groupwire.ui.web import (
    PREFIX,
    STATIC,
    Form,
    UiRoute,
    gw_of,
    posted_form,
    read_form,
    redirect,
    render,
)

router = APIRouter(prefix=PREFIX, route_class=UiRoute, include_in_schema=False)
LOGIN_COOKIE = "groupwire_login"


def _safe_next(target: str) -> str:
    """Only a path of this page may follow signing in (never another site)."""
    if target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{PREFIX}/groups"


@router.get("")
@router.get("/")
def start() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/groups", status_code=303)


@router.get("/static/{name}")
def static(name: str) -> Response:
    found = STATIC.get(name)
    if found is None:
        return Response("Not found", status_code=404, media_type="text/plain")
    return Response(
        found.body,
        media_type=found.media_type,
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


def _login_page(
    request: Request, *, next_url: str, status_code: int = 200, error: ApiError | None = None
) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        status_code=status_code,
        error=error,
        login_token=token,
        next_url=_safe_next(next_url),
    )
    response.set_cookie(
        LOGIN_COOKIE, token, path=f"{PREFIX}/login", httponly=True, samesite="strict"
    )
    return response


@router.get("/login")
def login_form(request: Request, next: str = "") -> Response:
    return _login_page(request, next_url=next)


@router.post("/login")
async def login(request: Request) -> Response:
    form: Form = await read_form(request)
    next_url = _safe_next(form.get("next"))
    expected = request.cookies.get(LOGIN_COOKIE, "")
    given = form.get("login_token")
    if not expected or not hmac.compare_digest(expected, given):
        error = ApiError("forbidden", "The sign-in form expired; please try again.")
        return _login_page(request, next_url=next_url, status_code=403, error=error)
    opened = await run_in_threadpool(sign_in, gw_of(request).engine, form.get("api_key"))
    if opened is None:
        error = ApiError("unauthorized", "That API key is unknown or revoked.")
        return _login_page(request, next_url=next_url, status_code=401, error=error)
    token, _ = opened
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(LIFETIME.total_seconds()),
        path="/",  # the page's scripts read /admin (event stream, stats) with it
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(LOGIN_COOKIE, path=f"{PREFIX}/login")
    return response


@router.post("/logout")
def logout(request: Request, form: Annotated[Form, Depends(posted_form)]) -> Response:
    sign_out(gw_of(request).engine, request.cookies.get(COOKIE))
    response = redirect("/login", notice="Signed out.")
    response.delete_cookie(COOKIE, path="/")
    return response
