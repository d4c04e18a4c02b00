"""Fixtures for the admin web page: an app over the ``gw`` fixture and signed-in browsers."""

from __future__ import annotations

import html
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI

with warnings.catch_warnings():  # starlette nudges towards another httpx package; same API
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from groupwire import Groupwire
from groupwire.api import create_app
from groupwire.auth import keys

SESSION_COOKIE = "groupwire_session"
_HIDDEN = r'name="{}" value="([^"]*)"'


def hidden(page: str, name: str) -> str:
    """The value of the hidden form field ``name`` in a rendered page."""
    found = re.search(_HIDDEN.format(name), page)
    assert found, f"no hidden field {name!r} in the page"
    return found.group(1)


def alert(page: str) -> str:
    """The text of the page's error box (empty when there is none), tags removed."""
    found = re.search(r'role="alert"[^>]*>(.*?)</div>', page, re.S)
    if not found:
        return ""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1))).strip())


def notice(page: str) -> str:
    found = re.search(r'class="notice" role="status">(.*?)</p>', page, re.S)
    return html.unescape(found.group(1).strip()) if found else ""


def sign_in(client: TestClient, secret: str) -> Any:
    """Post the sign-in form as a browser would (its token from the form page)."""
    form = client.get("/app/login")
    return client.post(
        "/app/login",
        data={"login_token": hidden(form.text, "login_token"), "api_key": secret, "next": ""},
        follow_redirects=False,
    )


@pytest.fixture
def gw(database_url: str) -> Iterator[Groupwire]:
    """A Groupwire whose webhooks may target 127.0.0.1 over http (no outside network here)."""
    instance = Groupwire.open(
        database_url,
        load_entry_points=False,
        plugins=[],
        webhooks_allow_private=True,
        webhooks_timeout=5.0,
    )
    yield instance
    instance.close()


@pytest.fixture
def app(gw: Groupwire) -> FastAPI:
    return create_app(gw)


@pytest.fixture
def browser(app: FastAPI) -> Iterator[TestClient]:
    """A client with no session yet (it keeps cookies, as a browser does)."""
    with TestClient(app) as client:
        yield client


@pytest.fixture
def signed_in(
    app: FastAPI, gw: Groupwire
) -> Iterator[Callable[..., tuple[TestClient, keys.ApiKey, str]]]:
    """``signed_in(["write"])``: a client signed in with a fresh key; the key and a CSRF token."""
    opened: list[TestClient] = []

    def make(scopes: list[str] | None = None) -> tuple[TestClient, keys.ApiKey, str]:
        key, secret = keys.create_key(gw.engine, "page user", scopes or ["write"])
        client = TestClient(app)
        opened.append(client)
        answer = sign_in(client, secret)
        assert answer.status_code == 303, answer.text
        csrf = hidden(client.get("/app/groups").text, "csrf_token")
        return client, key, csrf

    yield make
    for client in opened:
        client.close()
