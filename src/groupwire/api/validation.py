"""The message of a 400 for a malformed request, worded as Medusa 2.21 words it.

Medusa validates bodies and query strings with zod and turns the issues into one sentence
(``@medusajs/framework``'s ``zod-helpers``): ``Invalid request:`` and at most three issues
joined by ``; ``, each one of

* ``Expected type: 'string' for field 'name', got: '123'`` (a value of the wrong type; the
  value as JavaScript's ``String()`` writes it);
* ``Field 'name' is required`` (no value; also, a quirk kept on purpose, a wrong value inside
  an array: Medusa cannot look it up and calls it missing, e.g. ``Field 'add, 0' is required``);
* ``Unrecognized fields: 'a, b'`` (all unknown keys of one object, as one issue, after the
  issues of the known fields).

This module reads pydantic's errors the same way, so a Medusa client sees the same text.
Checks that are Groupwire's own (size limits, NUL characters, ISO dates, blank names) keep
Groupwire's wording, ``field: reason``. Echoed values and field names are cut short
(:func:`groupwire.domain.limits.shorten`), and many unknown fields are counted, not listed, so
a huge input never makes a huge message.

A body that is not JSON: when it ends too early, JavaScript's parser says ``Unexpected end of
JSON input``, and so does Groupwire; other syntax errors are described in Groupwire's words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from groupwire.domain.limits import listing, shorten

SHOWN_ISSUES = 3
"""Medusa names the first three issues only."""
LOCATIONS = frozenset({"body", "query", "path", "header"})
UNEXPECTED_END = "Unexpected end of JSON input"

# pydantic's error types for a value of the wrong type -> the type zod names.
EXPECTED_TYPE: dict[str, str] = {
    "string_type": "string",
    "list_type": "array",
    "dict_type": "record",
    "model_type": "object",
    "model_attributes_type": "object",
    "bool_type": "boolean",
    "bool_parsing": "boolean",
    "int_type": "number",
    "int_parsing": "number",
    "int_from_float": "number",
    "float_type": "number",
    "float_parsing": "number",
}


class _Undefined:
    """JavaScript's ``undefined``: no value at that path (as Medusa looks it up)."""


UNDEFINED = _Undefined()


def describe_validation_errors(errors: Sequence[Any], document: Any = None) -> str:
    """``Invalid request: ...`` for pydantic's (FastAPI's) error list, as Medusa words it.

    ``document``: the request body's text, when it was not JSON (``RequestValidationError.body``).
    """
    for item in errors:
        if item.get("type") == "json_invalid":
            return _not_json(item, document)
    issues: list[str] = []
    unknown: list[str] = []
    for item in errors:
        path = [part for part in item.get("loc", ()) if part not in LOCATIONS]
        if item.get("type") == "extra_forbidden":
            if not unknown:
                issues.append("")  # the unknown fields' place among the issues
            unknown.append(shorten(str(path[-1]) if path else ""))
            continue
        issues.append(_issue(item, path))
    issues = list(dict.fromkeys(issues))  # one line per distinct issue
    if unknown:
        issues[issues.index("")] = f"Unrecognized fields: '{listing(unknown)}'"
    return "Invalid request: " + "; ".join(issues[:SHOWN_ISSUES] or ["malformed request"])


def _issue(item: Any, path: list[Any]) -> str:
    kind = item.get("type", "")
    field = shorten(", ".join(str(part) for part in path))
    if kind == "missing":
        return f"Field '{field}' is required"
    expected = EXPECTED_TYPE.get(kind)
    if expected is not None:
        if expected == "record" and not path:
            expected = "object"
        received = _received(item.get("input"), path)
        if isinstance(received, _Undefined):
            return f"Field '{field}' is required"
        return f"Expected type: '{expected}' for field '{field}', got: '{shorten(received)}'"
    where = shorten(".".join(str(part) for part in path))
    message = shorten(str(item.get("msg", "is invalid")), 200)
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _received(value: Any, path: list[Any]) -> str | _Undefined:
    """The value Medusa finds at ``path``: none through an array (its lookup only enters
    plain objects), none for a whole body that is not an object."""
    if any(isinstance(part, int) for part in path):
        return UNDEFINED
    if not path and not isinstance(value, dict):
        return UNDEFINED
    return js_string(value)


def js_string(value: Any) -> str:
    """``String(value)`` in JavaScript, for a value read from JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if abs(value) < 10**21:
            return str(value)
        try:
            return js_number(float(value))
        except OverflowError:  # JSON.parse reads it as Infinity
            return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, float):
        return js_number(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ",".join("" if item is None else js_string(item) for item in value)
    return "[object Object]"


def js_number(number: float) -> str:
    """A number as JavaScript prints it: positional from 1e-6 to 1e21, else ``1.5e+21``."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"
    shortest = Decimal(repr(number))  # the shortest digits that read back as this number
    if 1e-6 <= abs(number) < 1e21:
        text = format(shortest, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    sign, digits, exponent = shortest.normalize().as_tuple()
    assert isinstance(exponent, int)
    mantissa = "".join(map(str, digits))
    power = exponent + len(digits) - 1
    body = mantissa[0] + (f".{mantissa[1:]}" if len(mantissa) > 1 else "")
    return f"{'-' if sign else ''}{body}e{'+' if power >= 0 else '-'}{abs(power)}"


def _not_json(item: Any, document: Any) -> str:
    loc = item.get("loc", ())
    position = loc[-1] if loc and isinstance(loc[-1], int) else None
    if isinstance(document, str | bytes) and position is not None and position >= len(document):
        return UNEXPECTED_END
    reason = (item.get("ctx") or {}).get("error")
    detail = f" ({shorten(str(reason), 80)} at position {position})" if reason else ""
    return f"Invalid request: the body is not valid JSON{detail}"
