"""Fixtures for black-box tests of the Admin API: an app over the ``gw`` fixture and keys."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI

with warnings.catch_warnings():  # starlette nudges towards another httpx package; same API
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from groupwire import Event, Groupwire
from groupwire.api import create_app
from groupwire.auth import keys


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def assert_error(response: Any, status: int, type: str) -> dict[str, Any]:
    """The response is a Medusa-shaped error of this status and type; returns its body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == type, body
    assert isinstance(body["message"], str) and body["message"]
    return body  # type: ignore[no-any-return]


def all_events(gw: Groupwire) -> list[Event]:
    return gw.events.list(limit=None)


@pytest.fixture
def app(gw: Groupwire) -> FastAPI:
    return create_app(gw)


@pytest.fixture
def admin_secret(gw: Groupwire) -> str:
    return keys.create_key(gw.engine, "test admin", ["admin"])[1]


@pytest.fixture
def anonymous(app: FastAPI) -> Iterator[TestClient]:
    """A client that sends no credentials."""
    with TestClient(app) as client:
        yield client


@pytest.fixture
def client(app: FastAPI, admin_secret: str) -> Iterator[TestClient]:
    """A client authenticated with an admin key."""
    with TestClient(app, headers=bearer(admin_secret)) as client:
        yield client


@pytest.fixture
def make_client(app: FastAPI, gw: Groupwire) -> Iterator[Any]:
    """``make_client(["read"])``: a client with a fresh key of those scopes, and the key."""
    opened: list[TestClient] = []

    def make(scopes: list[str]) -> tuple[TestClient, keys.ApiKey, str]:
        key, secret = keys.create_key(gw.engine, f"test {'+'.join(scopes)}", scopes)
        client = TestClient(app, headers=bearer(secret))
        opened.append(client)
        return client, key, secret

    yield make
    for client in opened:
        client.close()
