"""Groupwire: customer groups with first-class events and hooks.

The public names are imported on first use (a module ``__getattr__``, PEP 562): importing a
light module of the package (the command line's, the domain's) does not load the whole
stack (SQLAlchemy, the store, the relay), while ``from groupwire import Groupwire`` works
as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# public name -> the module that defines it
_WHERE: dict[str, str] = {
    "AddressDraft": "groupwire.domain.addresses",
    "AlreadyApplied": "groupwire.domain",
    "Context": "groupwire.domain.changes",
    "Customer": "groupwire.domain",
    "CustomerAddress": "groupwire.domain.addresses",
    "CustomerDraft": "groupwire.domain.changes",
    "CustomerGroup": "groupwire.domain",
    "Duplicate": "groupwire.domain",
    "Event": "groupwire.domain",
    "GroupDraft": "groupwire.domain.changes",
    "Groupwire": "groupwire.app",
    "GroupwireError": "groupwire.domain",
    "HookRejected": "groupwire.domain",
    "IdempotencyKeyReused": "groupwire.domain",
    "InvalidData": "groupwire.domain",
    "MembershipChange": "groupwire.service",
    "NotAllowed": "groupwire.domain",
    "NotFound": "groupwire.domain",
    "OutcomeUnknown": "groupwire.domain",
    "PreconditionFailed": "groupwire.domain",
    "ProposedUpdate": "groupwire.domain.changes",
    "Settings": "groupwire.settings",
    "Unavailable": "groupwire.domain",
    "hookimpl": "groupwire.hooks",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'groupwire' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is an ordinary one
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


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
