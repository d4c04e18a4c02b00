"""The domain's exceptions: one small hierarchy, mapped to HTTP in exactly one place (the API)."""

from __future__ import annotations

from collections.abc import Mapping

from groupwire.domain.changes import Answer
from groupwire.domain.limits import ID_MAX, listing, shorten


class GroupwireError(Exception):
    """Base of every error Groupwire raises on purpose."""

    type = "unexpected_state"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(GroupwireError):
    """An id names nothing (or something soft-deleted).

    The message is Medusa's: ``Customer group with id: X not found``. With ``field`` the id
    was named as a relationship (a membership's ``customer_id`` or ``customer_group_id``),
    and the message is the one Medusa gives for a foreign key to nothing: ``You tried to set
    relationship customer_id: X, but such entity does not exist``. Either message names at
    most a few ids and counts the rest, so 100,000 unknown ids make a short answer; ``ids``
    keeps them all.
    """

    type = "not_found"

    def __init__(self, kind: str, ids: str | list[str], *, field: str | None = None) -> None:
        self.kind = kind
        self.field = field
        self.ids = [ids] if isinstance(ids, str) else list(ids)
        self.label = LABELS.get(kind, kind)
        named = listing([shorten(i, ID_MAX) for i in self.ids])
        if field is not None:
            message = (
                f"You tried to set relationship {field}: {named}, but such entity does not exist"
            )
        elif len(self.ids) == 1:
            message = f"{self.label} with id: {named} not found"
        else:
            message = f"{self.label}s with ids: {named} not found"
        super().__init__(message)

    def quoted(self) -> str:
        """The wording of Medusa's update routes: ``Customer group with id "X" not found``."""
        if self.field is not None or len(self.ids) != 1:
            return self.message
        return f'{self.label} with id "{shorten(self.ids[0], ID_MAX)}" not found'


LABELS = {
    "customer_group": "Customer group",
    "customer": "Customer",
    "customer_address": "Customer address",
    "order": "Order",
}


class Duplicate(GroupwireError):
    """A value that must be unique (group name; customer email with has_account) is taken.

    ``also`` holds the other fields of a composite key; the message names every field as
    Medusa does: "Customer with email: a@b.co, has_account: false, already exists."
    """

    type = "invalid_data"  # Medusa 2 answers a unique violation with a 400 invalid_data

    def __init__(
        self, kind: str, field: str, value: str, *, also: Mapping[str, object] | None = None
    ) -> None:
        self.kind = kind
        self.field = field
        self.value = value
        self.also = dict(also or {})
        label = LABELS.get(kind, kind)
        key = [(field, value), *self.also.items()]
        named = ", ".join(f"{name}: {_as_text(v)}" for name, v in key)
        super().__init__(f"{label} with {named}, already exists.")


def _as_text(value: object) -> str:
    """A key's value as the message shows it (booleans in JSON's spelling)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class InvalidData(GroupwireError):
    """Input that no operation could accept (empty name, malformed email, wrong type)."""

    type = "invalid_data"


class HookRejected(GroupwireError):
    """Raised by a before-hook to veto a change: nothing is written and nothing is emitted."""

    type = "not_allowed"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class NotAllowed(GroupwireError):
    """A change that is never allowed on its target (a smart group's members by hand)."""

    type = "not_allowed"


class PreconditionFailed(GroupwireError):
    """An optimistic-concurrency check failed: the caller's version is stale."""

    type = "precondition_failed"

    def __init__(self, kind: str, id: str, expected: int, actual: int) -> None:
        self.kind = kind
        self.id = id
        self.expected = expected
        self.actual = actual
        super().__init__(f"{kind} {id} is at version {actual}, not {expected}")


class AlreadyApplied(GroupwireError):
    """A change carried an idempotency key that an earlier, committed change already used.

    Nothing was written this time. ``answer`` is the answer stored with the key by the earlier
    change (over HTTP it is replayed); the library's calls store none (the earlier call's
    result is what it returned).
    """

    type = "conflict"

    def __init__(self, key: str, answer: Answer | None = None) -> None:
        self.key = key
        self.answer = answer
        super().__init__(
            f"A request with Idempotency-Key {key!r} was already applied; nothing was changed"
        )


class IdempotencyKeyReused(GroupwireError):
    """An idempotency key was used again for a different request (method, path or body)."""

    type = "not_allowed"

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"Idempotency-Key {key!r} was already used for a different request; "
            "use a new key for a new request"
        )


class Unavailable(GroupwireError):
    """The database could not be reached, or its connection was lost before the change was
    committed: nothing was written, and the same request may simply be sent again."""

    type = "unexpected_state"


class OutcomeUnknown(Unavailable):
    """The connection was lost while the commit was under way: the change may or may not have
    been written. Only a request that can be recognised when sent again (an idempotency key)
    is safe to repeat; reading the state back tells what happened."""
