"""List filters as Medusa 2.21's Admin API takes them: parsed as Express parses a query string
(``qs``), normalised as Medusa's ``validateAndTransformQuery`` does, checked like its zod
validators (``AdminCustomersParams``, ``AdminGetCustomerGroupsParams``).

What a filter field accepts (``createOperatorMap``, ``booleanString``, ...):

- text fields: ``first_name=Ada``, ``first_name=Ada&first_name=Bob`` (any of them),
  ``first_name[]=Ada,Bob`` (a one-element list is split at commas, as Medusa does);
- operator fields (``id`` of customers, ``created_at``/``updated_at``/``deleted_at``, a
  group's customers' ``email``): the same, or ``created_at[$gte]=2024-01-01`` with ``$eq``,
  ``$ne`` (a value or a list), ``$in``/``$nin`` (a list: ``id[$in][]=a``), ``$like``,
  ``$ilike``, ``$re``, ``$gt``, ``$gte``, ``$lt``, ``$lte`` (one value);
- the value ``null`` (not inside a list) is SQL's NULL: ``company_name=null``,
  ``deleted_at[$ne]=null``;
- a relation (a customer's ``groups``, a group's ``customers``): ids, or the related row's
  own filters: ``groups[name]=VIP``, ``groups[created_at][$gte]=...``;
- ``$and``/``$or``: lists of filter objects, ``$or[0][first_name]=Ada&$or[1][last_name]=Doe``.

Unknown keys inside a nested object are ignored (zod strips them); unknown top-level keys
are 400 ``Unrecognized fields``. Deliberate divergences, where Medusa answers 500 because
PostgreSQL refuses the query it builds: a time that is no ISO 8601 date, ``$like``/``$re``
on a time, ``$contains``, ``q`` inside ``$and``/``$or`` and the address-id filters of a
group's customers are 400 here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

import qs_codec
from fastapi import Request
from fastapi.exceptions import RequestValidationError

from groupwire.domain.filters import All, AnyOf, Compare, Filter, Operator, Related, Value
from groupwire.domain.limits import shorten

Kind = Literal["text", "time", "bool"]

_QS = qs_codec.DecodeOptions(list_limit=1000)  # Express 4's ``qs.parse(s, {arrayLimit: 1000})``
_COMBINATORS = ("$and", "$or")
_OPERATORS: dict[str, Operator] = {
    "$eq": "eq",
    "$ne": "ne",
    "$in": "in",
    "$nin": "nin",
    "$like": "like",
    "$ilike": "ilike",
    "$re": "re",
    "$gt": "gt",
    "$gte": "gte",
    "$lt": "lt",
    "$lte": "lte",
}
_LIST_OPERATORS = ("$in", "$nin")
_VALUE_OR_LIST_OPERATORS = ("$eq", "$ne")
_PATTERN_OPERATORS = ("$like", "$ilike", "$re")


@dataclass(frozen=True, slots=True)
class Rule:
    """What one filter field takes: its kind, whether an operator map, or a relation."""

    kind: Kind = "text"
    operators: bool = False
    relation: Mapping[str, Rule] | None = None
    supported: bool = True  # Medusa validates it, but no query can use it
    lowercase: bool = False  # emails are stored lowercased, so compared lowercased


TEXT = Rule()
TEXT_OPS = Rule(operators=True)
TIME = Rule("time", operators=True)
EMAIL = Rule(lowercase=True)
EMAIL_OPS = Rule(operators=True, lowercase=True)
TIMES = {"created_at": TIME, "updated_at": TIME, "deleted_at": TIME}

GROUP_IN_CUSTOMER: dict[str, Rule] = {"id": TEXT, "name": TEXT, **TIMES}
CUSTOMER_IN_GROUP: dict[str, Rule] = {
    "id": TEXT,
    "email": EMAIL_OPS,
    "default_billing_address_id": Rule(supported=False),
    "default_shipping_address_id": Rule(supported=False),
    "company_name": TEXT,
    "first_name": TEXT,
    "last_name": TEXT,
    "created_by": TEXT,
    **TIMES,
}
CUSTOMER_FILTERS: dict[str, Rule] = {
    "id": TEXT_OPS,
    "email": EMAIL,
    "groups": Rule(relation=GROUP_IN_CUSTOMER),
    "company_name": TEXT,
    "first_name": TEXT,
    "last_name": TEXT,
    "has_account": Rule("bool"),
    "created_by": TEXT,
    **TIMES,
}
GROUP_FILTERS: dict[str, Rule] = {
    "id": TEXT,
    "name": TEXT,
    "customers": Rule(relation=CUSTOMER_IN_GROUP),
    "created_by": TEXT,
    **TIMES,
}


class _Invalid(Exception):
    def __init__(self, path: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.path = tuple(path)
        self.message = message


def _error(path: Sequence[str | int], message: str, kind: str = "value_error") -> Any:
    return {"loc": ("query", *path), "msg": message, "type": kind, "input": None}


def parse_query_string(raw: str) -> dict[str, Any]:
    """The query string as Medusa sees it: ``qs`` nesting, then ``normalizeQuery`` (a list of
    one string is split at commas; ``a.b=x`` is ``a[b]=x``, no deeper)."""
    decoded = qs_codec.decode(raw, _QS)
    result: dict[str, Any] = {}
    for key, value in decoded.items():
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
            value = value[0].split(",")
        if "." in key:
            parent, child, *deeper = key.split(".")
            if deeper:
                raise RequestValidationError(
                    [_error([key], f"Key accessor more than 2 levels deep: {shorten(key)}")]
                )
            nested = result.get(parent)
            result[parent] = {**(nested if isinstance(nested, dict) else {}), child: value}
        else:
            result[key] = value
    return result


def raw_query(request: Request) -> str:
    """The query string as the client sent it (before the array-key renaming middleware)."""
    state = request.scope.get("state", {})
    original = state.get("raw_query_string") if isinstance(state, dict) else None
    return original if isinstance(original, str) else request.url.query


def split_filters(
    query: Mapping[str, Any], rules: Mapping[str, Rule], others: Sequence[str]
) -> tuple[dict[str, Any], Filter | None]:
    """``(the other parameters, the filter)``; unknown keys are a 400 as in Medusa."""
    unknown = [key for key in query if key not in rules and key not in _COMBINATORS]
    unknown = [key for key in unknown if key not in others]
    if unknown:
        raise RequestValidationError([_error([key], "", "extra_forbidden") for key in unknown])
    rest = {key: value for key, value in query.items() if key in others}
    repeated = [key for key, value in rest.items() if not isinstance(value, str)]
    if repeated:  # ``limit=1&limit=2`` is a list, which Medusa's number or string refuses
        raise RequestValidationError([_error([key], "must be given once") for key in repeated])
    given = {key: value for key, value in query.items() if key not in others}
    try:
        where = _filters(given, rules, [], top=True)
    except _Invalid as invalid:
        raise RequestValidationError([_error(invalid.path, invalid.message)]) from None
    return rest, (where if where.parts else None)


def _filters(
    given: Mapping[str, Any], rules: Mapping[str, Rule], path: list[Any], *, top: bool
) -> All:
    parts: list[Filter] = []
    for key, value in given.items():
        where = [*path, key]
        if top and key in _COMBINATORS:
            items = value if isinstance(value, list) else None
            if items is None or not all(isinstance(item, dict) for item in items):
                raise _Invalid(where, "must be a list of filter objects, e.g. $or[0][id]=...")
            nested = [
                _filters(_known(item, rules, [*where, i]), rules, [*where, i], top=False)
                for i, item in enumerate(items)
            ]
            parts.append(All(tuple(nested)) if key == "$and" else AnyOf(tuple(nested)))
        elif key in rules:
            parts.extend(_field(key, value, rules[key], where))
    return All(tuple(parts))


def _known(item: Mapping[str, Any], rules: Mapping[str, Rule], path: list[Any]) -> dict[str, Any]:
    if "q" in item:
        raise _Invalid([*path, "q"], "q cannot be used inside $and or $or")
    return {key: value for key, value in item.items() if key in rules}


def _field(name: str, value: Any, rule: Rule, path: list[Any]) -> list[Filter]:
    found = _field_filters(name, value, rule, path)
    if not rule.lowercase:
        return found
    return [_lowercased(part) for part in found]


def _lowercased(part: Filter) -> Filter:
    if not isinstance(part, Compare) or part.op in ("like", "ilike", "re"):
        return part
    if isinstance(part.value, tuple):
        values = tuple(v.lower() if isinstance(v, str) else v for v in part.value)
        return Compare(part.field, part.op, values)
    if isinstance(part.value, str):
        return Compare(part.field, part.op, part.value.lower())
    return part


def _field_filters(name: str, value: Any, rule: Rule, path: list[Any]) -> list[Filter]:
    if not rule.supported:
        raise _Invalid(path, "this filter is not supported")
    if rule.relation is not None:
        if isinstance(value, dict):
            inner = _filters(_strip(value, rule.relation), rule.relation, path, top=False)
        else:
            ids = _text_or_list(value, path)
            inner = All((_equal_or_in("id", ids, "text", path),))
        return [Related(name, inner)]
    if rule.kind == "bool":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return [Compare(name, "eq", value.lower() == "true")]
        raise _Invalid(path, "must be true or false")
    if isinstance(value, dict):
        if not rule.operators:
            raise _Invalid(path, "must be a value or a list of values")
        return [
            _operator(name, op, arg, rule.kind, [*path, op])
            for op, arg in value.items()
            if op in _OPERATORS or op == "$contains"
        ]
    return [_equal_or_in(name, _text_or_list(value, path), rule.kind, path)]


def _strip(value: Mapping[str, Any], rules: Mapping[str, Rule]) -> dict[str, Any]:
    return {key: item for key, item in value.items() if key in rules}


def _text_or_list(value: Any, path: list[Any]) -> str | list[str]:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return cast(list[str], value)
    raise _Invalid(path, "must be a value or a list of values")


def _equal_or_in(name: str, value: str | list[str], kind: Kind, path: list[Any]) -> Compare:
    if isinstance(value, list):
        return Compare(
            name, "in", tuple(_typed(item, kind, path, nullable=False) for item in value)
        )
    return Compare(name, "eq", _typed(value, kind, path, nullable=True))


def _operator(name: str, op: str, arg: Any, kind: Kind, path: list[Any]) -> Compare:
    if op == "$contains":
        raise _Invalid(path, "$contains is not supported on this field")
    operator = _OPERATORS[op]
    if op in _LIST_OPERATORS:
        if not isinstance(arg, list) or not all(isinstance(item, str) for item in arg):
            raise _Invalid(path, f"{op} takes a list, e.g. {name}[{op}][]=...")
        return Compare(
            name, operator, tuple(_typed(item, kind, path, nullable=False) for item in arg)
        )
    if op in _VALUE_OR_LIST_OPERATORS and isinstance(arg, list):
        values = _text_or_list(arg, path)
        return Compare(
            name, operator, tuple(_typed(item, kind, path, nullable=False) for item in values)
        )
    if not isinstance(arg, str):
        raise _Invalid(path, f"{op} takes one value")
    if op in _PATTERN_OPERATORS:
        if kind != "text":
            raise _Invalid(path, f"{op} applies to text fields only")
        _check_pattern(op, arg, path)
        return Compare(name, operator, arg)
    return Compare(name, operator, _typed(arg, kind, path, nullable=True))


def _check_pattern(op: str, pattern: str, path: list[Any]) -> None:
    if op == "$re":
        try:
            re.compile(pattern)
        except re.error as error:
            raise _Invalid(path, f"not a regular expression: {error}") from None
    elif (len(pattern) - len(pattern.rstrip("\\"))) % 2:
        raise _Invalid(path, "a LIKE pattern cannot end with a lone escape character")


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$"
)


def _typed(text: str, kind: Kind, path: list[Any], *, nullable: bool) -> Value:
    if nullable and text == "null":
        return None
    if kind != "time":
        return text
    if not (_DATE.match(text) or _DATE_TIME.match(text)):
        raise _Invalid(path, "must be a date or a date and time in ISO 8601, e.g. 2024-01-31")
    try:
        moment = datetime.fromisoformat(text)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _Invalid(path, "is not a valid date") from None


# --- the OpenAPI document --------------------------------------------------------------------

_LIKE = {"type": "string", "pattern": r"^(?:[^\\]|\\[\s\S])*$"}


def _operator_schema(kind: Kind) -> dict[str, Any]:
    value = {"type": "string", "format": "date-time"} if kind == "time" else {"type": "string"}
    names = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]
    properties: dict[str, Any] = {name: value for name in names}
    if kind == "text":
        properties.update({"$like": _LIKE, "$ilike": _LIKE})
    return {"type": "object", "properties": properties, "additionalProperties": False}


def openapi_parameters(rules: Mapping[str, Rule]) -> list[dict[str, Any]]:
    """The filter parameters of a list operation, for ``openapi_extra``.

    OpenAPI cannot state every form ``qs`` takes (``$in`` lists inside an operator map,
    nested relation filters, ``$and``/``$or``); the descriptions say what else is accepted.
    """
    parameters: list[dict[str, Any]] = []
    for name, rule in rules.items():
        if not rule.supported:
            continue
        if rule.relation is not None:
            fields = [key for key, inner in rule.relation.items() if inner == TEXT]
            schema = {
                "type": "object",
                "properties": {key: {"type": "string"} for key in fields},
                "additionalProperties": False,
            }
            description = (
                f"Ids (`{name}=a&{name}=b`) or the related row's own filters "
                f"(`{name}[id]=...`, `{name}[created_at][$gte]=...`)"
            )
            parameters.append(_parameter(name, schema, description, deep=True))
        elif rule.kind == "bool":
            parameters.append(_parameter(name, {"type": "boolean"}, "true or false"))
        elif rule.operators:
            description = (
                f"A value, values (`{name}=a&{name}=b`), or operators: "
                f"`{name}[$gte]=...`, `{name}[$in][]=...`, `{name}[$ne]=null`"
            )
            parameters.append(_parameter(name, _operator_schema(rule.kind), description, deep=True))
        else:
            schema = {"type": "array", "items": {"type": "string"}}
            parameters.append(_parameter(name, schema, f"Any of these (`{name}=a&{name}=b`)"))
    for name in _COMBINATORS:
        description = (
            f"A list of filter objects, each with this operation's filters: "
            f"`{name}[0][first_name]=Ada&{name}[1][last_name]=Doe`"
        )
        schema = {"type": "array", "items": {"type": "object"}}
        parameters.append(_parameter(name, schema, description, deep=True))
    return parameters


def _parameter(
    name: str, schema: dict[str, Any], description: str, *, deep: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
        "style": "deepObject" if deep else "form",
        "explode": True,
    }
