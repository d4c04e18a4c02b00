"""Groupwire: customer groups with first-class events and hooks."""

from groupwire.app import Groupwire
from groupwire.domain import (
    AlreadyApplied,
    Customer,
    CustomerGroup,
    Duplicate,
    Event,
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
from groupwire.domain.addresses import AddressDraft, CustomerAddress
from groupwire.domain.changes import Context, CustomerDraft, GroupDraft, ProposedUpdate
from groupwire.hooks import hookimpl
from groupwire.service import MembershipChange
from groupwire.settings import Settings

__all__ = [
    "AddressDraft",
    "AlreadyApplied",
    "Context",
    "Customer",
    "CustomerAddress",
    "CustomerDraft",
    "CustomerGroup",
    "Duplicate",
    "Event",
    "GroupDraft",
    "Groupwire",
    "GroupwireError",
    "HookRejected",
    "IdempotencyKeyReused",
    "InvalidData",
    "MembershipChange",
    "NotAllowed",
    "NotFound",
    "OutcomeUnknown",
    "PreconditionFailed",
    "ProposedUpdate",
    "Settings",
    "Unavailable",
    "hookimpl",
]
