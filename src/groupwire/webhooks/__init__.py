"""Signed webhooks (Standard Webhooks) for CRMs and marketing tools.

``gw.webhooks.create(url, event_types=["customer_group.*"])`` registers an endpoint; every
matching committed event is then delivered to it as the JSON event envelope, signed with
the endpoint's ``whsec_`` secret, retried on a schedule and logged attempt by attempt.
"""

from __future__ import annotations

from typing import Any

from groupwire.webhooks.clock import Clock, ManualClock, SystemClock
from groupwire.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from groupwire.webhooks.schedule import DEFAULT_SCHEDULE, RetrySchedule
from groupwire.webhooks.service import Webhooks
from groupwire.webhooks.signing import Signer, generate_secret, sign
from groupwire.webhooks.ssrf import UnsafeUrl, resolve_target


def webhooks_of(gw: Any) -> Webhooks:
    """The webhook service of a Groupwire instance (``gw.webhooks``), typed."""
    webhooks = getattr(gw, "webhooks", None)
    if not isinstance(webhooks, Webhooks):
        raise RuntimeError("this Groupwire instance has no webhooks plugin registered")
    return webhooks


__all__ = [
    "DEFAULT_SCHEDULE",
    "Clock",
    "ManualClock",
    "RetrySchedule",
    "Signer",
    "SystemClock",
    "UnsafeUrl",
    "WebhookAttempt",
    "WebhookEndpoint",
    "WebhookMessage",
    "Webhooks",
    "generate_secret",
    "resolve_target",
    "sign",
    "webhooks_of",
]
