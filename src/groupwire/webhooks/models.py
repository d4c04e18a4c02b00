"""Snapshots of webhook endpoints, messages and attempts, as the webhook service hands them out."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"
MESSAGE_STATUSES = (PENDING, SUCCEEDED, FAILED)

LIVE = "live"


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """Where and what to deliver. ``secret`` is set only in the answer to a create or a
    rotation: it is shown once and never listed."""

    id: str
    url: str
    description: str | None
    event_types: list[str]
    group_ids: list[str] | None
    enabled: bool
    ordered: bool
    failing_since: datetime | None
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime
    secret: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["secret"] is None:
            del data["secret"]
        return data


@dataclass(frozen=True, slots=True)
class WebhookMessage:
    """One event queued for one endpoint, with its delivery state."""

    id: str
    endpoint_id: str
    event_id: str
    event_sequence: int
    event_type: str
    partition: str
    origin: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    """One HTTP request made for a message, successful or not."""

    id: str
    message_id: str
    endpoint_id: str
    attempt: int
    url: str
    succeeded: bool
    status_code: int | None
    duration_ms: int
    response: str | None
    error: str | None
    attempted_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
