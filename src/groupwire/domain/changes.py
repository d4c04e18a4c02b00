"""What a before-hook sees and may modify: the proposed change, before anything is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Context:
    """Who asked for a change and on behalf of which request; copied into every event.

    ``idempotency_key`` makes the change safe to retry: the key is recorded in the change's
    own transaction, scoped by ``actor``, and a later change under the same actor and key
    writes nothing (``AlreadyApplied``, or ``IdempotencyKeyReused`` when it asks for
    something else). ``request_fingerprint`` says what "the same request" means; the Admin
    API sets it from the method, path, query and body, the service otherwise derives it from
    the operation and its arguments.
    """

    actor: str | None = None
    correlation_id: str | None = None
    idempotency_key: str | None = None
    request_fingerprint: str | None = None


@dataclass(slots=True)
class GroupDraft:
    """A customer group about to be created. Hooks may change any field."""

    name: str
    description: str | None = None
    metadata: dict[str, Any] | None = None


@dataclass(slots=True)
class CustomerDraft:
    """A customer about to be created. Hooks may change any field; ``email`` may be None."""

    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company_name: str | None = None
    phone: str | None = None
    has_account: bool = False
    metadata: dict[str, Any] | None = None


@dataclass(slots=True)
class ProposedUpdate:
    """New values for some fields of an existing row (metadata already merged).

    Hooks may change, add or drop entries of ``values``; fields left equal to the current
    values are not written and emit nothing.
    """

    values: dict[str, Any] = field(default_factory=dict)
