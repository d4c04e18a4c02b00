"""Webhook test fixtures: a Groupwire that may call loopback receivers, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from groupwire import Groupwire

WEBHOOK_SETTINGS: dict[str, Any] = {
    "load_entry_points": False,
    "plugins": [],
    "delivery_retry_base": 0.001,
    "delivery_retry_max": 0.01,
    "relay_poll_interval": 0.05,
    "webhooks_allow_private": True,
    "webhooks_poll_interval": 0.05,
    "webhooks_timeout": 10.0,
}


def open_gw(database_url: str, **overrides: Any) -> Groupwire:
    return Groupwire.open(database_url, **{**WEBHOOK_SETTINGS, **overrides})


@pytest.fixture
def gw(database_url: str) -> Iterator[Groupwire]:
    """A Groupwire whose webhooks may target 127.0.0.1 over http (as in development)."""
    instance = open_gw(database_url)
    yield instance
    instance.close()
