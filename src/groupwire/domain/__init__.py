"""The domain: entities, event types and errors. No I/O lives here."""

from groupwire.domain.errors import (
    AlreadyApplied,
    Duplicate,
    GroupwireError,
    HookRejected,
    IdempotencyKeyReused,
    InvalidData,
    NotAllowed,
    NotFound,
    OutcomeUnknown,
    PreconditionFailed,
    Unavailable,
)
from groupwire.domain.models import Customer, CustomerGroup, Event, Membership, Page

__all__ = [
    "AlreadyApplied",
    "Customer",
    "CustomerGroup",
    "Duplicate",
    "Event",
    "GroupwireError",
    "HookRejected",
    "IdempotencyKeyReused",
    "InvalidData",
    "Membership",
    "NotAllowed",
    "NotFound",
    "OutcomeUnknown",
    "Page",
    "PreconditionFailed",
    "Unavailable",
]
