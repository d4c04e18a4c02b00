"""Smart groups' rules: the grammar, its validation, and the Python evaluator.

A rule is a JSON object in the shape of the Admin API's list filters (Medusa's operators),
over a customer, its live addresses, its orders and its groups::

    {"orders.total": {"currency": "eur", "$gte": 1000, "last": "365d"},
     "$or": [{"email": {"$ilike": "%@shop.example"}}, {"metadata.tier": "gold"}],
     "include": ["cus_01..."], "exclude": ["cus_02..."]}

Every key of an object must hold (``$and``); ``$or`` takes a list of objects of which one
must hold, ``$and`` a list of which all must. ``include`` and ``exclude`` (top level only)
list customer ids that are members whatever the condition says, and that never are.
``docs/smart-groups.md`` is the reference; in short, a field takes a value (``$eq``), a list
(``$in``) or an object of operators, all of which must hold:

- customer fields: ``email``, ``company_name``, ``first_name``, ``last_name``, ``phone``
  (text: ``$eq $ne $in $nin $like $ilike $exists``), ``has_account`` (``true``/``false``),
  ``created_at``, ``updated_at`` (times: ``$eq $ne $gt $gte $lt $lte $exists``);
- ``metadata.<key>``: the JSON value under a top-level key of the metadata: strings,
  numbers, booleans (``$eq`` matches the same type only), ranges over numbers or over text;
- ``addresses.<field>``: some live address of the customer matches;
- ``orders.count``, ``orders.total`` (needs ``currency``), ``orders.first_placed_at``,
  ``orders.last_placed_at``: facts of the customer's orders, canceled and draft orders left
  out, each optionally within a window (``"last": "90d"``: placed in the last 90 days) and,
  for count and times, of one currency;
- ``groups.id``: membership of other groups (``$eq``/``$in``: member of one of them;
  ``$ne``/``$nin``: of none of them);
- times are ISO 8601 or relative to now: ``{"$ago": "14d"}``, ``{"$ahead": "2h"}``, ``"$now"``.

A field compared with ``null`` or ``$exists: false`` matches a missing value; every other
comparison is false on a missing value (``$ne: "x"`` needs a value that is not ``"x"``), as
in SQL. Nothing here reads a database: :meth:`Rule.matches` decides one customer from a
:class:`Snapshot`, and :mod:`groupwire.store.rules` compiles the same :class:`Rule` to SQL;
a property test holds the two equal.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Literal

from groupwire.domain.addresses import CustomerAddress
from groupwire.domain.errors import InvalidData
from groupwire.domain.filters import like_regex
from groupwire.domain.limits import ID_MAX, shorten
from groupwire.domain.models import Customer

Op = Literal["eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "like", "ilike", "exists"]
Kind = Literal["text", "bool", "time", "count", "amount", "json", "group"]

OPERATORS: dict[str, Op] = {
    "$eq": "eq",
    "$ne": "ne",
    "$in": "in",
    "$nin": "nin",
    "$gt": "gt",
    "$gte": "gte",
    "$lt": "lt",
    "$lte": "lte",
    "$like": "like",
    "$ilike": "ilike",
    "$exists": "exists",
}
RANGE: frozenset[Op] = frozenset({"gt", "gte", "lt", "lte"})
LISTS: frozenset[Op] = frozenset({"in", "nin"})
PATTERNS: frozenset[Op] = frozenset({"like", "ilike"})

CUSTOMER_FIELDS: dict[str, Kind] = {
    "email": "text",
    "has_account": "bool",
    "company_name": "text",
    "first_name": "text",
    "last_name": "text",
    "phone": "text",
    "created_at": "time",
    "updated_at": "time",
}
ADDRESS_FIELDS: tuple[str, ...] = (
    "address_name",
    "company",
    "first_name",
    "last_name",
    "address_1",
    "address_2",
    "city",
    "country_code",
    "province",
    "postal_code",
    "phone",
)
ORDER_FACTS: dict[str, Kind] = {
    "count": "count",
    "total": "amount",
    "first_placed_at": "time",
    "last_placed_at": "time",
}
ALLOWED: dict[Kind, frozenset[Op]] = {
    "text": frozenset({"eq", "ne", "in", "nin", "like", "ilike", "exists"}),
    "bool": frozenset({"eq", "ne"}),
    "time": frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "exists"}),
    "count": frozenset({"eq", "ne", "in", "nin", "gt", "gte", "lt", "lte"}),
    "amount": frozenset({"eq", "ne", "gt", "gte", "lt", "lte"}),
    "json": frozenset(OPERATORS.values()),
    "group": frozenset({"eq", "ne", "in", "nin"}),
}
UNCOUNTED_STATUSES = ("canceled", "draft")
"""Orders in these states count for no order fact."""
AMOUNT_DECIMALS = 4
"""Decimal places an order total (and a rule's amount) may have."""
MAX_DEPTH = 16
MAX_LIST = 1000
MAX_IDS = 10_000
META_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,255}$")
CURRENCY = re.compile(r"^[a-z]{3}$")
DURATION = re.compile(r"^(\d{1,6})([smhdw])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
NOW = "$now"
TEXT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
"""How a time compares with a text value (``metadata.trial_ends_at``): as this text."""


# --- the parsed rule ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Relative:
    """A moment relative to the evaluation's ``now``: ``now + offset``."""

    offset: timedelta

    def at(self, now: datetime) -> datetime:
        return now + self.offset


Scalar = str | bool | int | Decimal | datetime | Relative | None


@dataclass(frozen=True, slots=True)
class CustomerField:
    name: str
    kind: Kind


@dataclass(frozen=True, slots=True)
class MetadataKey:
    key: str
    kind: Kind = "json"


@dataclass(frozen=True, slots=True)
class AddressField:
    name: str
    kind: Kind = "text"


@dataclass(frozen=True, slots=True)
class OrderFact:
    """One fact of a customer's counted orders: ``measure`` over those placed since
    ``now - window`` (all when None) in ``currency`` (any when None)."""

    measure: str
    kind: Kind
    currency: str | None = None
    window: timedelta | None = None


@dataclass(frozen=True, slots=True)
class GroupIds:
    kind: Kind = "group"


Target = CustomerField | MetadataKey | AddressField | OrderFact | GroupIds


@dataclass(frozen=True, slots=True)
class Test:
    """``target <op> value``; ``in``/``nin`` take a tuple, ``exists`` a bool."""

    target: Target
    op: Op
    value: Scalar | tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class AllOf:
    parts: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple[Condition, ...]


Condition = Test | AllOf | AnyOf


@dataclass(frozen=True, slots=True)
class Rule:
    """A parsed, valid rule; ``source`` is the JSON it came from (as stored)."""

    condition: Condition
    include: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()
    source: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def tests(self) -> list[Test]:
        return list(_tests(self.condition))

    @property
    def dependencies(self) -> frozenset[str]:
        """What a change must touch for this rule's answer to change: ``customer.<field>``,
        ``metadata``, ``addresses``, ``orders``, ``group:<id>`` (and ``time`` for a rule
        with relative times, whose answer changes by itself)."""
        found: set[str] = set()
        for test in self.tests:
            target = test.target
            if isinstance(target, CustomerField):
                found.add(f"customer.{target.name}")
            elif isinstance(target, MetadataKey):
                found.add("metadata")
            elif isinstance(target, AddressField):
                found.add("addresses")
            elif isinstance(target, OrderFact):
                found.add("orders")
                if target.window is not None:
                    found.add("time")
            else:
                found.update(f"group:{gid}" for gid in _group_ids(test))
            if _relative(test.value):
                found.add("time")
        return frozenset(found)

    @property
    def group_ids(self) -> frozenset[str]:
        """The groups whose membership this rule reads (``groups.id``)."""
        return frozenset(
            gid
            for test in self.tests
            if isinstance(test.target, GroupIds)
            for gid in _group_ids(test)
        )

    def matches(self, snapshot: Snapshot, now: datetime) -> bool:
        """Whether the customer of ``snapshot`` belongs to the group at ``now`` (include
        and exclude applied; a deleted customer never belongs)."""
        customer_id = snapshot.customer.id
        if snapshot.customer.deleted_at is not None or customer_id in self.exclude:
            return False
        return customer_id in self.include or holds(self.condition, snapshot, now)


def _tests(condition: Condition) -> list[Test]:
    if isinstance(condition, Test):
        return [condition]
    return [test for part in condition.parts for test in _tests(part)]


def _group_ids(test: Test) -> tuple[str, ...]:
    value = test.value
    return tuple(str(v) for v in value) if isinstance(value, tuple) else (str(value),)


def _relative(value: Any) -> bool:
    if isinstance(value, tuple):
        return any(isinstance(v, Relative) for v in value)
    return isinstance(value, Relative)


# --- parsing and validation --------------------------------------------------------------------


def parse_rule(data: Any) -> Rule:
    """Validate a rule's JSON; raises :class:`InvalidData` naming the first problem."""
    if not isinstance(data, Mapping):
        raise InvalidData("rule must be a JSON object")
    include = _id_list(data.get("include", []), "rule.include")
    exclude = _id_list(data.get("exclude", []), "rule.exclude")
    rest = {k: v for k, v in data.items() if k not in ("include", "exclude")}
    condition = _object(rest, "rule", 0)
    if isinstance(condition, AllOf) and not condition.parts and not include:
        raise InvalidData("rule must have a condition or an include list")
    return Rule(condition, include, exclude, dict(data))


def _id_list(value: Any, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(
        isinstance(item, str) and 0 < len(item) <= ID_MAX for item in value
    ):
        raise InvalidData(f"{where} must be a list of customer ids")
    if len(value) > MAX_IDS:
        raise InvalidData(f"{where} may list at most {MAX_IDS} customer ids")
    return frozenset(value)


def _object(data: Any, where: str, depth: int) -> AllOf:
    if depth > MAX_DEPTH:
        raise InvalidData(f"{where}: rules may nest at most {MAX_DEPTH} levels")
    if not isinstance(data, Mapping):
        raise InvalidData(f"{where} must be a JSON object")
    parts: list[Condition] = []
    for key, value in data.items():
        path = f"{where}.{key}"
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InvalidData(f"{path} must be a non-empty list of objects")
            nested = tuple(_object(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
            parts.append(AllOf(nested) if key == "$and" else AnyOf(nested))
        elif key in ("include", "exclude"):
            raise InvalidData(f"{path}: include and exclude belong at the top of the rule")
        else:
            parts.extend(_field(str(key), value, path))
    return AllOf(tuple(parts))


def _target(name: str, path: str) -> Target:
    if name in CUSTOMER_FIELDS:
        return CustomerField(name, CUSTOMER_FIELDS[name])
    head, _, rest = name.partition(".")
    if head == "metadata" and rest:
        if not META_KEY.match(rest):
            raise InvalidData(f"{path}: a metadata key is letters, digits, _ and - only")
        return MetadataKey(rest)
    if head == "addresses" and rest in ADDRESS_FIELDS:
        return AddressField(rest)
    if head == "orders" and rest in ORDER_FACTS:
        return OrderFact(rest, ORDER_FACTS[rest])
    if name == "groups.id":
        return GroupIds()
    known = [*CUSTOMER_FIELDS, "metadata.<key>", *(f"addresses.{f}" for f in ADDRESS_FIELDS)]
    known += [*(f"orders.{f}" for f in ORDER_FACTS), "groups.id"]
    raise InvalidData(f"{path}: unknown field {shorten(name)!r}; known: {', '.join(known)}")


def _field(name: str, value: Any, path: str) -> list[Test]:
    target = _target(name, path)
    if isinstance(target, OrderFact) and isinstance(value, Mapping):
        value = dict(value)
        target = _order_options(target, value, path)
    elif isinstance(target, OrderFact) and target.measure == "total":
        raise InvalidData(f'{path} needs a currency: {{"currency": "eur", "$gte": 100}}')
    if isinstance(value, Mapping):
        if not value:
            raise InvalidData(f"{path} must name at least one operator")
        tests = []
        for op, arg in value.items():
            if op not in OPERATORS:
                raise InvalidData(
                    f"{path}: unknown operator {shorten(str(op))!r}; known: {', '.join(OPERATORS)}"
                )
            tests.append(_test(target, OPERATORS[op], arg, f"{path}.{op}"))
        return tests
    if isinstance(value, list):
        return [_test(target, "in", value, path)]
    return [_test(target, "eq", value, path)]


def _order_options(target: OrderFact, value: dict[str, Any], path: str) -> OrderFact:
    currency = value.pop("currency", None)
    window = value.pop("last", None)
    if currency is not None:
        if not isinstance(currency, str) or not CURRENCY.match(currency.lower()):
            raise InvalidData(f'{path}.currency must be an ISO 4217 code such as "eur"')
        currency = currency.lower()
    elif target.measure == "total":
        raise InvalidData(f'{path} needs a currency: {{"currency": "eur", "$gte": 100}}')
    span = None if window is None else duration(window, f"{path}.last")
    return OrderFact(target.measure, target.kind, currency, span)


def duration(text: Any, where: str) -> timedelta:
    """``"90d"``: a number and a unit (s, m, h, d, w)."""
    match = DURATION.match(text) if isinstance(text, str) else None
    if match is None or int(match.group(1)) == 0:
        raise InvalidData(
            f"{where}: {shorten(repr(text))} is not a duration: a number and a unit "
            f'(s, m, h, d, w), e.g. "90d"'
        )
    return timedelta(seconds=int(match.group(1)) * UNITS[match.group(2)])


def _test(target: Target, op: Op, arg: Any, path: str) -> Test:
    kind = target.kind
    if op not in ALLOWED[kind]:
        allowed = [name for name, o in OPERATORS.items() if o in ALLOWED[kind]]
        raise InvalidData(f"{path}: operator not allowed here; allowed: {', '.join(allowed)}")
    if op == "exists":
        if not isinstance(arg, bool):
            raise InvalidData(f"{path} takes true or false")
        return Test(target, op, arg)
    if op in LISTS:
        if not isinstance(arg, list) or not arg:
            raise InvalidData(f"{path} takes a non-empty list")
        if len(arg) > MAX_LIST:
            raise InvalidData(f"{path} takes at most {MAX_LIST} values")
        return Test(target, op, tuple(_value(kind, op, item, path, nullable=False) for item in arg))
    if isinstance(arg, list):
        raise InvalidData(f"{path} takes one value")
    nullable = op in ("eq", "ne") and kind not in ("count", "amount", "bool", "group")
    value = _value(kind, op, arg, path, nullable=nullable)
    if op in PATTERNS:
        if not isinstance(value, str):
            raise InvalidData(f"{path} takes a text pattern")
        if (len(value) - len(value.rstrip("\\"))) % 2:
            raise InvalidData(f"{path}: a LIKE pattern cannot end with a lone escape character")
    email = isinstance(target, CustomerField) and target.name == "email"
    if email and isinstance(value, str) and op not in PATTERNS:
        value = value.lower()  # emails are stored lowercased
    return Test(target, op, value)


def _value(kind: Kind, op: Op, arg: Any, path: str, *, nullable: bool) -> Scalar:
    if arg is None:
        if nullable:
            return None
        raise InvalidData(f"{path} cannot be null here")
    if kind == "text" or kind == "group":
        if not isinstance(arg, str):
            raise InvalidData(f"{path} takes text")
        return arg
    if kind == "bool":
        if not isinstance(arg, bool):
            raise InvalidData(f"{path} takes true or false")
        return arg
    if kind == "time":
        return _time(arg, path)
    if kind == "count":
        if isinstance(arg, bool) or not isinstance(arg, int) or not 0 <= arg < 2**31:
            raise InvalidData(f"{path} takes a whole number, 0 or more (below 2^31)")
        return arg
    if kind == "amount":
        return amount(arg, path)
    # json (metadata): a JSON scalar, or a time compared as text
    if isinstance(arg, bool | str) and not (isinstance(arg, str) and arg == NOW):
        if isinstance(arg, bool) and (op in RANGE or op in PATTERNS):
            raise InvalidData(f"{path}: true and false cannot be ordered")
        return arg
    if isinstance(arg, int | float) and not isinstance(arg, bool):
        if op in PATTERNS:
            raise InvalidData(f"{path} takes a text pattern")
        return _decimal(arg, path)
    if arg == NOW or isinstance(arg, Mapping):
        if op not in RANGE and op not in ("eq", "ne"):
            raise InvalidData(f"{path}: a time takes $eq $ne $gt $gte $lt $lte")
        return _time(arg, path)
    raise InvalidData(f"{path} takes text, a number, true, false or null")


def _decimal(arg: int | float, path: str) -> Decimal:
    try:
        value = Decimal(repr(arg)) if isinstance(arg, float) else Decimal(arg)
    except InvalidOperation:
        raise InvalidData(f"{path} is not a number") from None
    if not value.is_finite():
        raise InvalidData(f"{path} is not a finite number")
    return value


def amount(arg: Any, path: str) -> Decimal:
    """A money amount in major units (as Medusa's), at most four decimal places."""
    if isinstance(arg, bool) or not isinstance(arg, int | float | str | Decimal):
        raise InvalidData(f"{path} takes an amount, e.g. 1000 or 99.95")
    try:
        value = Decimal(repr(arg)) if isinstance(arg, float) else Decimal(arg)
    except InvalidOperation:
        raise InvalidData(f"{path} takes an amount, e.g. 1000 or 99.95") from None
    if not value.is_finite() or abs(value) >= Decimal(10) ** 15:
        raise InvalidData(f"{path} takes a finite amount below 10^15")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -AMOUNT_DECIMALS:
        raise InvalidData(f"{path} takes at most {AMOUNT_DECIMALS} decimal places")
    return value


def _time(arg: Any, path: str) -> datetime | Relative:
    if arg == NOW:
        return Relative(timedelta(0))
    if isinstance(arg, Mapping):
        if len(arg) == 1 and ("$ago" in arg or "$ahead" in arg):
            ((key, text),) = arg.items()
            span = duration(text, f"{path}.{key}")
            return Relative(-span if key == "$ago" else span)
        raise InvalidData(f'{path}: a relative time is {{"$ago": "14d"}} or {{"$ahead": "2h"}}')
    if isinstance(arg, str):
        try:
            moment = datetime.fromisoformat(arg)
        except ValueError:
            moment = None
        if moment is not None and re.match(r"^\d{4}-\d{2}-\d{2}", arg):
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    raise InvalidData(
        f'{path} takes a time: ISO 8601 ("2025-01-31T00:00:00Z"), "$now", '
        f'{{"$ago": "14d"}} or {{"$ahead": "2h"}}'
    )


# --- the Python evaluator ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Order:
    """What a rule reads of one order (the ledger's row)."""

    currency_code: str
    total: Decimal
    status: str
    placed_at: datetime | None

    @property
    def counted(self) -> bool:
        return self.status not in UNCOUNTED_STATUSES and self.placed_at is not None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One customer as a rule sees it: live addresses, orders, groups (live ones)."""

    customer: Customer
    addresses: Sequence[CustomerAddress] = ()
    orders: Sequence[Order] = ()
    group_ids: frozenset[str] = frozenset()


def holds(condition: Condition, snapshot: Snapshot, now: datetime) -> bool:
    """Whether ``condition`` holds for the customer of ``snapshot`` at ``now``."""
    if isinstance(condition, AllOf):
        return all(holds(part, snapshot, now) for part in condition.parts)
    if isinstance(condition, AnyOf):
        return any(holds(part, snapshot, now) for part in condition.parts)
    target = condition.target
    if isinstance(target, CustomerField):
        return _compare(condition, getattr(snapshot.customer, target.name), now)
    if isinstance(target, MetadataKey):
        return _compare(condition, (snapshot.customer.metadata or {}).get(target.key), now)
    if isinstance(target, AddressField):
        return any(_compare(condition, getattr(a, target.name), now) for a in snapshot.addresses)
    if isinstance(target, OrderFact):
        return _compare(condition, order_fact(target, snapshot.orders, now), now)
    ids = _group_ids(condition)
    member = any(gid in snapshot.group_ids for gid in ids)
    return member if condition.op in ("eq", "in") else not member


def order_fact(fact: OrderFact, orders: Sequence[Order], now: datetime) -> Any:
    """The value of ``fact`` over ``orders``: a count, a total (0 without orders) or a time
    (None without orders)."""
    since = None if fact.window is None else now - fact.window
    counted = [
        o
        for o in orders
        if o.counted
        and (fact.currency is None or o.currency_code == fact.currency)
        and (since is None or (o.placed_at is not None and o.placed_at >= since))
    ]
    if fact.measure == "count":
        return len(counted)
    if fact.measure == "total":
        return sum((o.total for o in counted), Decimal(0))
    times = [o.placed_at for o in counted if o.placed_at is not None]
    if not times:
        return None
    return min(times) if fact.measure == "first_placed_at" else max(times)


def _compare(test: Test, value: Any, now: datetime) -> bool:
    op, arg = test.op, test.value
    if isinstance(value, float):
        value = Decimal(repr(value))
    if op == "exists":
        return (value is not None) == arg
    if op == "eq" and arg is None:
        return value is None
    if op == "ne" and arg is None:
        return value is not None
    if value is None:
        return False
    if op == "eq":
        return _equal(value, arg, now)
    if op == "ne":
        return not _equal(value, arg, now)
    if op == "in":
        return any(_equal(value, item, now) for item in arg)  # type: ignore[union-attr]
    if op == "nin":
        return not any(_equal(value, item, now) for item in arg)  # type: ignore[union-attr]
    if op in PATTERNS:
        if not isinstance(value, str):
            return False
        return _like_pattern(str(arg), op == "ilike").match(value) is not None
    left, right = _comparable(value, arg, now)
    if left is None:
        return False
    if op == "gt":
        return bool(left > right)
    if op == "gte":
        return bool(left >= right)
    if op == "lt":
        return bool(left < right)
    return bool(left <= right)


def _resolved(arg: Any, value: Any, now: datetime) -> Any:
    """A rule's time as the value it is compared with: a datetime, or text for text."""
    moment = arg.at(now) if isinstance(arg, Relative) else arg
    if isinstance(moment, datetime) and not isinstance(value, datetime):
        return moment.astimezone(UTC).strftime(TEXT_TIME_FORMAT)
    return moment


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | Decimal):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, datetime):
        return "time"
    return "other"


def _equal(value: Any, arg: Any, now: datetime) -> bool:
    arg = _resolved(arg, value, now)
    return _kind_of(value) == _kind_of(arg) and value == arg


def _comparable(value: Any, arg: Any, now: datetime) -> tuple[Any, Any]:
    arg = _resolved(arg, value, now)
    kind = _kind_of(value)
    if kind != _kind_of(arg) or kind in ("bool", "other"):
        return None, None
    return value, arg


# --- when a rule's answer can change by itself ------------------------------------------------

TICK = timedelta(microseconds=1)
"""The clock's resolution: a comparison ``t >= b`` turns false one tick after ``b``."""
_LAST_SECOND = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())
_FIRST_SECOND = int(datetime(1000, 1, 1, tzinfo=UTC).timestamp())


def next_flip(rule: Rule, snapshot: Snapshot, now: datetime) -> datetime | None:
    """The earliest moment after ``now`` at which ``rule.matches(snapshot, t)`` may differ
    from its value at ``now`` with nothing else changing; None when it never can.

    Conservative: it is the first moment after ``now`` at which any time comparison the rule
    makes for this customer changes (a relative time crossing a customer's time or metadata
    value, an order leaving a window, a relative time crossing an order's time), whether or
    not the rule's answer then changes. The answer is constant on ``[now, next_flip)``; at
    the returned moment it is decided again and the next one computed."""
    customer = snapshot.customer
    if customer.deleted_at is not None or customer.id in rule.exclude:
        return None
    if customer.id in rule.include:
        return None
    later = [moment for moment in _moments(rule.condition, snapshot, now) if moment > now]
    return min(later, default=None)


def _moments(condition: Condition, snapshot: Snapshot, now: datetime) -> list[datetime]:
    found: list[datetime] = []
    for test in _tests(condition):
        target = test.target
        values = test.value if isinstance(test.value, tuple) else (test.value,)
        offsets = [value.offset for value in values if isinstance(value, Relative)]
        if isinstance(target, OrderFact):
            placed = [o.placed_at for o in snapshot.orders if o.counted and o.placed_at]
            if target.window is not None:  # an order leaves the window one tick after this
                found += _shifted(placed, target.window)
            for offset in offsets:  # any order's time may be the fact's value
                for moment in placed:
                    found += _crossings(moment, offset, now)
            continue
        if not offsets:
            continue
        if isinstance(target, CustomerField):
            value = getattr(snapshot.customer, target.name)
        elif isinstance(target, MetadataKey):
            value = (snapshot.customer.metadata or {}).get(target.key)
        else:
            continue  # addresses and groups take no times
        for offset in offsets:
            found += _crossings(value, offset, now)
    return found


def _shifted(moments: Sequence[datetime], span: timedelta) -> list[datetime]:
    found = []
    for moment in moments:
        with contextlib.suppress(OverflowError):
            found += [moment + span, moment + span + TICK]
    return found


def _crossings(value: Any, offset: timedelta, now: datetime) -> list[datetime]:
    """When ``now + offset`` crosses ``value`` (a time, or a text compared with the time's
    text): ``value`` against ``t + offset`` is constant before each returned moment, between
    two of them and after the last."""
    if isinstance(value, datetime):
        return _shifted([value], -offset)
    if not isinstance(value, str):
        return []  # numbers, booleans, missing: never compared with a time
    try:
        start = int((now + offset).timestamp() // 1)
    except OverflowError:
        return []
    start = max(start, _FIRST_SECOND)  # the text of a time is monotone from year 1000
    found = []
    for strict in (False, True):
        second = _first_second(value, start, strict)
        if second is not None:
            with contextlib.suppress(OverflowError, ValueError, OSError):
                found.append(datetime.fromtimestamp(second, UTC) - offset)
    return found


def _first_second(value: str, start: int, strict: bool) -> int | None:
    """The first whole second from ``start`` whose text is ``>= value`` (``> value`` when
    ``strict``): the text of a time grows with it, so a binary search finds it."""

    def reached(second: int) -> bool:
        text = datetime.fromtimestamp(second, UTC).strftime(TEXT_TIME_FORMAT)
        return text > value if strict else text >= value

    low, high = start, _LAST_SECOND
    if low > high or not reached(high):
        return None
    while low < high:
        middle = (low + high) // 2
        if reached(middle):
            high = middle
        else:
            low = middle + 1
    return low


@lru_cache(maxsize=4096)
def _like_pattern(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    flags = re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL
    return re.compile(like_regex(pattern), flags)


# --- why a customer is in ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a rule lets a customer in: the ``include`` list, or one top-level clause of the
    rule's JSON that holds (for a top-level ``$or``, the branch that held, ``branch`` its
    index)."""

    kind: Literal["include", "clause"]
    clause: Mapping[str, Any] = field(default_factory=dict)
    branch: int | None = None


def explain(rule: Rule, snapshot: Snapshot, now: datetime) -> list[Reason]:
    """Why the customer of ``snapshot`` belongs to the group of ``rule`` at ``now``: the
    ``include`` list if it names the customer, and the rule's top-level clauses that hold
    for it when the whole condition holds. Empty when the customer does not belong."""
    if not rule.matches(snapshot, now):
        return []
    found: list[Reason] = []
    if snapshot.customer.id in rule.include:
        found.append(Reason("include"))
    if not holds(rule.condition, snapshot, now):
        return found
    for key, value in rule.source.items():
        if key in ("include", "exclude"):
            continue
        if key == "$or":
            for index, branch in enumerate(value):
                if holds(_object(branch, "rule.$or", 1), snapshot, now):
                    found.append(Reason("clause", branch, index))
                    break
        elif holds(_object({key: value}, "rule", 0), snapshot, now):
            found.append(Reason("clause", {key: value}))
    return found


__all__ = [
    "Order",
    "Reason",
    "Rule",
    "Snapshot",
    "amount",
    "duration",
    "explain",
    "holds",
    "next_flip",
    "order_fact",
    "parse_rule",
]
