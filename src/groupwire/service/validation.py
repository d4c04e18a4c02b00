"""The checks of the values a change proposes.

Each operation runs them on its input before the before-hooks and again on the change as the
hooks left it (a hook may modify it): a value no database or client could take raises
:class:`~groupwire.domain.errors.InvalidData`, a stale ``expected_version``
:class:`~groupwire.domain.errors.PreconditionFailed`, and nothing is written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from groupwire.domain.changes import CustomerDraft, GroupDraft
from groupwire.domain.errors import InvalidData, PreconditionFailed
from groupwire.domain.limits import (
    DESCRIPTION_MAX,
    EMAIL_MAX,
    ID_MAX,
    METADATA_KEY_MAX,
    METADATA_MAX_BYTES,
    METADATA_MAX_DEPTH,
    NAME_MAX,
    PHONE_MAX,
    excerpt,
    json_size,
    listing,
)
from groupwire.domain.models import Customer

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _validate_group_draft(draft: GroupDraft) -> None:
    _validate_group_fields(
        {"name": draft.name, "description": draft.description, "metadata": draft.metadata}
    )


def _validate_group_fields(values: dict[str, Any]) -> None:
    if "name" in values:
        name = values["name"]
        if not isinstance(name, str) or not name.strip():
            raise InvalidData("name must be a non-empty string")
        if len(name) > NAME_MAX:
            raise InvalidData(f"name must be at most {NAME_MAX} characters")
        _check_text(name, "name")
    description = values.get("description")
    if description is not None and not isinstance(description, str):
        raise InvalidData("description must be a string or null")
    if description is not None:
        if len(description) > DESCRIPTION_MAX:
            raise InvalidData(f"description must be at most {DESCRIPTION_MAX:,} characters")
        _check_text(description, "description")
    _validate_metadata(values)


def _validate_metadata(values: dict[str, Any]) -> None:
    metadata = values.get("metadata")
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise InvalidData("metadata must be an object or null")
    _check_json(metadata, "metadata")
    _check_metadata_size(metadata)


def _check_metadata_size(metadata: dict[str, Any] | None) -> None:
    """Metadata, as given or as merged, fits ``METADATA_MAX_BYTES`` of compact JSON."""
    if metadata is not None and json_size(metadata) > METADATA_MAX_BYTES:
        raise InvalidData(f"metadata must be at most {METADATA_MAX_BYTES:,} bytes as JSON")


def _check_text(value: str, field: str) -> None:
    """Refuse what no database stores as text: NUL characters and lone surrogates."""
    if "\x00" in value:
        raise InvalidData(f"{field} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidData(f"{field} must be valid Unicode text") from None


def _check_json(value: Any, field: str, depth: int = 0) -> None:
    """Metadata must be plain JSON (objects, arrays, strings, finite numbers, booleans, null)."""
    if depth > METADATA_MAX_DEPTH:
        raise InvalidData(f"{field} is nested too deeply")
    if isinstance(value, str):
        _check_text(value, field)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidData(f"{field} keys must be strings")
            if len(key) > METADATA_KEY_MAX:
                raise InvalidData(f"{field} keys must be at most {METADATA_KEY_MAX} characters")
            _check_text(key, field)
            _check_json(item, field, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, field, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidData(f"{field} numbers must be finite")
    elif value is not None and not isinstance(value, bool | int | float):
        raise InvalidData(f"{field} must hold JSON values only, not {type(value).__name__}")


def _validate_customer_draft(draft: CustomerDraft) -> None:
    if isinstance(draft.email, str):
        draft.email = draft.email.strip().lower()
    _validate_customer_fields(
        {
            "email": draft.email,
            "first_name": draft.first_name,
            "last_name": draft.last_name,
            "company_name": draft.company_name,
            "phone": draft.phone,
            "metadata": draft.metadata,
        }
    )


def _validate_customer_fields(values: dict[str, Any]) -> None:
    email = values.get("email")
    if email is not None:  # no email is fine (Medusa: nullish); a given one must be valid
        if not isinstance(email, str) or not EMAIL.match(email.strip()):
            raise InvalidData(f"email must be a valid email address, got {excerpt(email)}")
        if len(email) > EMAIL_MAX:
            raise InvalidData(f"email must be at most {EMAIL_MAX} characters")
        _check_text(email, "email")
    for name in ("first_name", "last_name", "company_name", "phone"):
        value = values.get(name)
        if value is not None and not isinstance(value, str):
            raise InvalidData(f"{name} must be a string or null")
        limit = PHONE_MAX if name == "phone" else NAME_MAX
        if isinstance(value, str) and len(value) > limit:
            raise InvalidData(f"{name} must be at most {limit} characters")
        if isinstance(value, str):
            _check_text(value, name)
    _validate_metadata(values)


def _unique_ids(ids: Sequence[str], name: str) -> list[str]:
    if isinstance(ids, str) or not all(isinstance(i, str) and i for i in ids):
        raise InvalidData(f"{name} must be a list of ids")
    if any(len(i) > ID_MAX for i in ids):
        raise InvalidData(f"{name} holds an id longer than {ID_MAX} characters")
    return list(dict.fromkeys(ids))


def _kept_ids(proposed: list[str], customers: list[Customer]) -> list[str]:
    """The ids a before-hook left in its ``customers`` list (it may only remove)."""
    kept = {customer.id for customer in customers}
    added = kept - set(proposed)
    if added:
        raise InvalidData(f"A hook added customers to the change: {listing(sorted(added))}")
    return [cid for cid in proposed if cid in kept]


def _check_version(kind: str, id: str, actual: int, expected: int | None) -> None:
    if expected is not None and expected != actual:
        raise PreconditionFailed(kind, id, expected, actual)
