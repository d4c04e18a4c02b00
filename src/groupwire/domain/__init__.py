"""The domain: entities, event types and errors. No I/O lives here."""

from groupwire.domain.errors import (
    Duplicate,
    GroupwireError,
    HookRejected,
    InvalidData,
    NotFound,
    OutcomeUnknown,
    PreconditionFailed,
    Unavailable,
)
from groupwire.domain.models import Customer, CustomerGroup, Event, Membership, Page

__all__ = [
    "Customer",
    "CustomerGroup",
    "Duplicate",
    "Event",
    "GroupwireError",
    "HookRejected",
    "InvalidData",
    "Membership",
    "NotFound",
    "OutcomeUnknown",
    "Page",
    "PreconditionFailed",
    "Unavailable",
]
