"""Fixtures for the built-in use cases: a real SMTP server and a Groupwire that mails to it."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from groupwire import Groupwire
from groupwire.api import create_app
from groupwire.auth import keys
from tests.usecases.mailbox import Mailbox, SmtpServer

SENDER = "Shop <hello@shop.example>"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def mailbox(smtp: SmtpServer) -> Mailbox:
    return smtp.mailbox


def open_gw(database_url: str, smtp_port: int, **overrides: Any) -> Groupwire:
    settings: dict[str, Any] = {
        "load_entry_points": False,
        "plugins": [],
        "delivery_retry_base": 0.001,
        "delivery_retry_max": 0.01,
        "relay_poll_interval": 0.05,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_timeout": 10.0,
        "mail_sender": SENDER,
        "webhooks_allow_private": True,
        "webhooks_poll_interval": 0.05,
        "webhooks_dispatch": False,
    }
    return Groupwire.open(database_url, **{**settings, **overrides})


@pytest.fixture
def gw(database_url: str, smtp: SmtpServer) -> Iterator[Groupwire]:
    """A Groupwire on a fresh database whose mail goes to the test's SMTP server."""
    instance = open_gw(database_url, smtp.port)
    yield instance
    instance.close()


@pytest.fixture
def app(gw: Groupwire) -> FastAPI:
    return create_app(gw)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def client(app: FastAPI, gw: Groupwire) -> Iterator[TestClient]:
    """A client with an admin key."""
    secret = keys.create_key(gw.engine, "use cases admin", ["admin"])[1]
    with TestClient(app, headers=bearer(secret)) as test_client:
        yield test_client


@pytest.fixture
def writer(app: FastAPI, gw: Groupwire) -> Iterator[TestClient]:
    """A client whose key may read and write, but not administer."""
    secret = keys.create_key(gw.engine, "use cases writer", ["write"])[1]
    with TestClient(app, headers=bearer(secret)) as test_client:
        yield test_client
