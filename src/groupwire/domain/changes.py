"""What a before-hook sees and may modify: the proposed change, before anything is written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer a caller gave to a change (an HTTP status, a few headers, the body's bytes):
    stored with the change's idempotency key, in its transaction, and replayed to a retry."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Answering(Protocol):
    """How a caller answers a change, told the entity the change is about once it is decided.

    Called inside the change's transaction, just before the commit, with the transaction's
    connection when the change carries an idempotency key: it then renders its answer (reading
    any related rows through that connection) and returns it, to be stored with the key in the
    same transaction. Called after the commit with ``None`` otherwise: it returns ``None`` and
    renders its answer later, as it likes.
    """

    def __call__(self, subject: Any, connection: Any) -> Answer | None: ...


@dataclass(frozen=True, slots=True)
class Context:
    """Who asked for a change and on behalf of which request; ``actor`` and
    ``correlation_id`` are copied into every event.

    ``idempotency_key`` makes the change safe to retry: the key is recorded in the change's
    own transaction, scoped by ``actor``, and a later change under the same actor and key
    writes nothing (``AlreadyApplied``, or ``IdempotencyKeyReused`` when it asks for
    something else). ``request_fingerprint`` says what "the same request" means; the Admin
    API sets it from the method, path, query and body, the service otherwise derives it from
    the operation and its arguments (``additional_data`` included).

    ``additional_data`` is free-form data the caller hands to the hooks of this one change,
    as Medusa's workflow hooks receive it: the Admin API copies it from the ``additional_data``
    field of the bodies that accept one (Medusa's ``WithAdditionalData`` bodies: creating and
    updating a customer or an address), the library takes it for any operation. It is never
    stored and never part of an event: it lives as long as the request.

    ``answer`` (see :class:`Answering`) is how the caller answers the change: the Admin API
    sets it so that the answer to a keyed request is stored in the change's own transaction.
    """

    actor: str | None = None
    correlation_id: str | None = None
    idempotency_key: str | None = None
    request_fingerprint: str | None = None
    additional_data: Mapping[str, Any] | None = field(default=None, hash=False)
    answer: Answering | None = field(default=None, compare=False, hash=False, repr=False)


@dataclass(slots=True)
class GroupDraft:
    """A customer group about to be created. Hooks may change any field."""

    name: str
    description: str | None = None
    metadata: dict[str, Any] | None = None
    rule: dict[str, Any] | None = None
    """A smart group's rule (``docs/smart-groups.md``); None for a manual group."""


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
