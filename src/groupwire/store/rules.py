"""A smart group's :class:`~groupwire.domain.rules.Rule` as one SQL condition over ``customer``.

The second evaluator of the grammar (the first is :meth:`Rule.matches`, in Python, for one
customer inside a transaction): :func:`rule_condition` decides every customer at once, for
``INSERT ... SELECT`` and ``DELETE ... WHERE`` over millions of rows. Both must say the same
for every customer; ``tests/core/test_rule_evaluators.py`` holds them equal on random data,
on SQLite and PostgreSQL. Where the backends differ, the SQL is chosen to match the Python:

- each test is two-valued where it can be negated (``$ne``: a value, and not equal), and the
  whole condition is ``COALESCE(..., false)``, so ``NOT`` of it is the complement;
- metadata values compare only with values of their JSON type (PostgreSQL's
  ``jsonb_typeof``, SQLite's ``json_type``); text ranges compare code points (``COLLATE "C"``);
- order totals are summed exactly: PostgreSQL's ``numeric``, SQLite's in ten-thousandths
  (totals have at most four decimal places) as integers;
- ``$like``/``$ilike`` are :func:`groupwire.store.filters.like` (SQLite: a regular expression).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    Numeric,
    String,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.sql.elements import ColumnElement

from groupwire.domain.rules import (
    AMOUNT_DECIMALS,
    PATTERNS,
    TEXT_TIME_FORMAT,
    UNCOUNTED_STATUSES,
    AddressField,
    AllOf,
    AnyOf,
    Condition,
    CustomerField,
    GroupIds,
    MetadataKey,
    OrderFact,
    Relative,
    Rule,
    Test,
)
from groupwire.store import tables
from groupwire.store.address_tables import customer_address
from groupwire.store.filters import like
from groupwire.store.order_tables import customer_order

C = tables.customer
G = tables.customer_group
M = tables.membership
A = customer_address
O = customer_order  # noqa: E741
SCALE = 10**AMOUNT_DECIMALS


def rule_condition(rule: Rule, dialect: str, now: datetime) -> ColumnElement[bool]:
    """Whether the row of ``customer`` is a member under ``rule`` at ``now``: live, not
    excluded, and included or matching; never NULL."""
    matching: ColumnElement[bool] = func.coalesce(condition(rule.condition, dialect, now), false())
    if rule.include:
        matching = or_(C.c.id.in_(sorted(rule.include)), matching)
    parts = [C.c.deleted_at.is_(None), matching]
    if rule.exclude:
        parts.append(C.c.id.not_in(sorted(rule.exclude)))
    return and_(*parts)


def condition(where: Condition, dialect: str, now: datetime) -> ColumnElement[bool]:
    """``where`` over the row of ``customer`` (may be NULL where a value is missing)."""
    if isinstance(where, AllOf):
        return and_(true(), *(condition(part, dialect, now) for part in where.parts))
    if isinstance(where, AnyOf):
        return or_(false(), *(condition(part, dialect, now) for part in where.parts))
    target = where.target
    if isinstance(target, CustomerField):
        return _column(C.c[target.name], where, dialect, now)
    if isinstance(target, AddressField):
        return exists(
            select(A.c.id)
            .where(
                A.c.customer_id == C.c.id,
                A.c.deleted_at.is_(None),
                _column(A.c[target.name], where, dialect, now),
            )
            .correlate(C)
        )
    if isinstance(target, OrderFact):
        return _order_fact(target, where, dialect, now)
    if isinstance(target, GroupIds):
        return _groups(where)
    return _metadata(target, where, dialect, now)


def _value(value: Any, now: datetime) -> Any:
    return value.at(now) if isinstance(value, Relative) else value


def _column(column: Any, test: Test, dialect: str, now: datetime) -> ColumnElement[bool]:
    op, value = test.op, test.value
    if op == "exists":
        return column.is_not(None) if value else column.is_(None)
    if value is None:
        return column.is_(None) if op == "eq" else column.is_not(None)
    if op in ("in", "nin"):
        values = [_value(v, now) for v in value]  # type: ignore[union-attr]
        if op == "in":
            return column.in_(values)
        return and_(column.is_not(None), column.not_in(values))
    if op in PATTERNS:
        return like(column, str(value), dialect, ignore_case=op == "ilike")
    value = _value(value, now)
    if op == "eq":
        return column == value
    if op == "ne":
        return and_(column.is_not(None), column != value)
    compare = {"gt": column.__gt__, "gte": column.__ge__, "lt": column.__lt__}
    return compare.get(op, column.__le__)(value)


# --- orders --------------------------------------------------------------------------------------


def _order_fact(fact: OrderFact, test: Test, dialect: str, now: datetime) -> ColumnElement[bool]:
    where = [
        O.c.customer_id == C.c.id,
        O.c.status.not_in(UNCOUNTED_STATUSES),
        O.c.placed_at.is_not(None),
    ]
    if fact.currency is not None:
        where.append(O.c.currency_code == fact.currency)
    if fact.window is not None:
        where.append(O.c.placed_at >= now - fact.window)
    if fact.measure == "count":
        measured: Any = func.count()
    elif fact.measure == "total":
        if dialect == "postgresql":
            measured = func.coalesce(func.sum(O.c.total), 0)
        else:  # summed as integers: SQLite keeps a numeric column as a float
            units = cast(func.round(O.c.total * SCALE), Integer)
            measured = func.coalesce(func.sum(units), 0)
            test = _scaled(test)
    elif fact.measure == "first_placed_at":
        measured = func.min(O.c.placed_at)
    else:
        measured = func.max(O.c.placed_at)
    value = select(measured).where(*where).correlate(C).scalar_subquery()
    return _column(value, test, dialect, now)


def _scaled(test: Test) -> Test:
    """An amount test in ten-thousandths, as SQLite sums totals."""

    def units(value: Any) -> Any:
        return int(Decimal(value) * SCALE) if isinstance(value, Decimal) else value

    if isinstance(test.value, tuple):
        return Test(test.target, test.op, tuple(units(v) for v in test.value))
    return Test(test.target, test.op, units(test.value))


# --- groups --------------------------------------------------------------------------------------


def _groups(test: Test) -> ColumnElement[bool]:
    ids = list(test.value) if isinstance(test.value, tuple) else [test.value]
    member = exists(
        select(M.c.customer_id)
        .join(G, G.c.id == M.c.customer_group_id)
        .where(
            M.c.customer_id == C.c.id,
            M.c.customer_group_id.in_(ids),
            G.c.deleted_at.is_(None),
        )
        .correlate(C)
    )
    return member if test.op in ("eq", "in") else not_(member)


# --- metadata ------------------------------------------------------------------------------------


class _Json:
    """One metadata key's JSON value, its type and its readings, in the dialect's terms."""

    def __init__(self, key: str, dialect: str) -> None:
        self.postgres = dialect == "postgresql"
        if self.postgres:
            item = C.c.metadata[key]
            self.type = func.jsonb_typeof(item)
            self.text = item.as_string()
        else:
            path = f'$."{key}"'
            self.type = func.json_type(C.c.metadata, path)
            self.text = func.json_extract(C.c.metadata, path, type_=String)
            self.raw = func.json_extract(C.c.metadata, path, type_=Float)

    def present(self) -> ColumnElement[bool]:
        return func.coalesce(self.type, "null") != "null"

    def is_text(self) -> ColumnElement[bool]:
        return func.coalesce(self.type, "") == ("string" if self.postgres else "text")

    def is_number(self) -> ColumnElement[bool]:
        if self.postgres:
            return func.coalesce(self.type, "") == "number"
        return func.coalesce(self.type, "").in_(("integer", "real"))

    def number(self) -> Any:
        if self.postgres:  # cast only numbers: PostgreSQL may evaluate it before the type test
            return case((self.is_number(), cast(self.text, Numeric)), else_=None)
        return self.raw

    def number_value(self, value: Decimal) -> Any:
        return literal(value, Numeric) if self.postgres else literal(float(value), Float)

    def boolean(self, value: bool) -> ColumnElement[bool]:
        if self.postgres:
            return and_(
                func.coalesce(self.type, "") == "boolean",
                self.text == ("true" if value else "false"),
            )
        return func.coalesce(self.type, "") == ("true" if value else "false")

    def text_for_range(self) -> Any:
        return self.text.collate("C") if self.postgres else self.text


def _metadata(key: MetadataKey, test: Test, dialect: str, now: datetime) -> ColumnElement[bool]:
    value = _Json(key.key, dialect)
    op, arg = test.op, test.value
    if op == "exists":
        return value.present() if arg else not_(value.present())
    if arg is None:
        return not_(value.present()) if op == "eq" else value.present()
    if op in ("eq", "in"):
        items = arg if isinstance(arg, tuple) else (arg,)
        return or_(false(), *(_json_equal(value, item, now) for item in items))
    if op in ("ne", "nin"):
        items = arg if isinstance(arg, tuple) else (arg,)
        return and_(value.present(), *(not_(_json_equal(value, item, now)) for item in items))
    if op in PATTERNS:
        return and_(value.is_text(), like(value.text, str(arg), dialect, ignore_case=op == "ilike"))
    compare = {"gt": "__gt__", "gte": "__ge__", "lt": "__lt__", "lte": "__le__"}[op]
    if isinstance(arg, Decimal | int) and not isinstance(arg, bool):
        number = value.number()
        return and_(value.is_number(), getattr(number, compare)(value.number_value(Decimal(arg))))
    text = _as_text(arg, now)
    return and_(value.is_text(), getattr(value.text_for_range(), compare)(text))


def _as_text(arg: Any, now: datetime) -> str:
    moment = _value(arg, now)
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).strftime(TEXT_TIME_FORMAT)
    return str(moment)


def _json_equal(value: _Json, item: Any, now: datetime) -> ColumnElement[bool]:
    """The key holds ``item``, of the same JSON type; never NULL."""
    if isinstance(item, bool):
        return value.boolean(item)
    if isinstance(item, Decimal | int):
        return and_(
            value.is_number(),
            func.coalesce(value.number() == value.number_value(Decimal(item)), false()),
        )
    return and_(value.is_text(), func.coalesce(value.text == _as_text(item, now), false()))


def members_query(rule: Rule, dialect: str, now: datetime) -> Any:
    """``SELECT customer.id`` of every member under ``rule`` at ``now``."""
    return select(C.c.id).where(rule_condition(rule, dialect, now))


def matching_ids(
    conn: Any, rule: Rule, now: datetime, among: Sequence[str] | None = None
) -> set[str]:
    """The ids of the members under ``rule`` at ``now`` (among ``among`` when given)."""
    query = members_query(rule, conn.dialect.name, now)
    if among is not None:
        query = query.where(C.c.id.in_(list(among)))
    return set(conn.execute(query).scalars())
