"""The domain's exceptions: one small hierarchy, mapped to HTTP in exactly one place (the API)."""

from __future__ import annotations

from groupwire.domain.limits import ID_MAX, listing


class GroupwireError(Exception):
    """Base of every error Groupwire raises on purpose."""

    type = "unexpected_state"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(GroupwireError):
    """An id names nothing (or something soft-deleted).

    The message names at most a few ids and counts the rest, so 100,000 unknown ids make a
    short answer; ``ids`` keeps them all.
    """

    type = "not_found"

    def __init__(self, kind: str, ids: str | list[str]) -> None:
        self.kind = kind
        self.ids = [ids] if isinstance(ids, str) else list(ids)
        label = {"customer_group": "Customer group", "customer": "Customer"}.get(kind, kind)
        named = [i if len(i) <= ID_MAX else f"{i[: ID_MAX - 3]}..." for i in self.ids]
        if len(named) == 1:
            message = f"{label} with id: {named[0]} was not found"
        else:
            message = f"{label}s with ids: {listing(named)} were not found"
        super().__init__(message)


class Duplicate(GroupwireError):
    """A value that must be unique (group name, customer email) is taken."""

    type = "duplicate_error"

    def __init__(self, kind: str, field: str, value: str) -> None:
        self.kind = kind
        self.field = field
        self.value = value
        label = {"customer_group": "Customer group", "customer": "Customer"}.get(kind, kind)
        super().__init__(f"{label} with {field}: {value}, already exists.")


class InvalidData(GroupwireError):
    """Input that no operation could accept (empty name, malformed email, wrong type)."""

    type = "invalid_data"


class HookRejected(GroupwireError):
    """Raised by a before-hook to veto a change: nothing is written and nothing is emitted."""

    type = "not_allowed"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class PreconditionFailed(GroupwireError):
    """An optimistic-concurrency check failed: the caller's version is stale."""

    type = "precondition_failed"

    def __init__(self, kind: str, id: str, expected: int, actual: int) -> None:
        self.kind = kind
        self.id = id
        self.expected = expected
        self.actual = actual
        super().__init__(f"{kind} {id} is at version {actual}, not {expected}")
