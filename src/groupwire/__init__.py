"""Groupwire: customer groups with first-class events and hooks."""

from groupwire.app import Groupwire
from groupwire.domain import (
    Customer,
    CustomerGroup,
    Duplicate,
    Event,
    GroupwireError,
    HookRejected,
    InvalidData,
    NotFound,
    OutcomeUnknown,
    PreconditionFailed,
    Unavailable,
)
from groupwire.domain.changes import Context, CustomerDraft, GroupDraft, ProposedUpdate
from groupwire.hooks import hookimpl
from groupwire.service import MembershipChange
from groupwire.settings import Settings

__all__ = [
    "Context",
    "Customer",
    "CustomerDraft",
    "CustomerGroup",
    "Duplicate",
    "Event",
    "GroupDraft",
    "Groupwire",
    "GroupwireError",
    "HookRejected",
    "InvalidData",
    "MembershipChange",
    "NotFound",
    "OutcomeUnknown",
    "PreconditionFailed",
    "ProposedUpdate",
    "Settings",
    "Unavailable",
    "hookimpl",
]
