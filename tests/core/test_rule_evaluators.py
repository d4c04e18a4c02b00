"""One grammar, two evaluators: a smart group's rule decided in Python for one customer
(``Rule.matches`` over a snapshot) and in SQL for all customers at once
(``groupwire.store.rules.rule_condition``) gives the same members, on random customers,
addresses, orders, memberships and rules, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert

from groupwire.domain.addresses import CustomerAddress
from groupwire.domain.models import Customer
from groupwire.domain.rules import Order, Snapshot, parse_rule
from groupwire.store import rules as sql_rules
from groupwire.store import tables
from groupwire.store.address_tables import customer_address
from groupwire.store.order_tables import customer_order

NOW = datetime(2026, 12, 8, 12, 0, 0, tzinfo=UTC)
GROUPS = ("g1", "g2")
IDS = tuple(f"c{n}" for n in range(6))
LETTERS = "abAB_%"
DAYS = st.integers(min_value=1, max_value=60)


def moments() -> st.SearchStrategy[datetime]:
    return st.builds(
        lambda seconds, micro: NOW + timedelta(seconds=seconds, microseconds=micro),
        st.integers(min_value=-90 * 86400, max_value=30 * 86400),
        st.sampled_from([0, 0, 123456]),
    )


texts = st.text(LETTERS, max_size=3)
optional_texts = st.none() | texts
patterns = st.text(LETTERS + "\\", max_size=4).filter(
    lambda p: (len(p) - len(p.rstrip("\\"))) % 2 == 0
)
amounts = st.decimals(min_value=0, max_value=300, places=2, allow_nan=False)
iso = moments().map(lambda m: m.strftime("%Y-%m-%dT%H:%M:%SZ"))
meta_values = st.one_of(
    st.none(),
    texts,
    st.integers(min_value=-3, max_value=3),
    st.floats(min_value=-3, max_value=3).map(lambda f: round(f, 2)),
    st.booleans(),
    iso,
    st.just({"nested": 1}),
)


@dataclass
class Data:
    customers: list[dict[str, Any]] = field(default_factory=list)
    addresses: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    memberships: list[tuple[str, str]] = field(default_factory=list)


@st.composite
def data_sets(draw: st.DrawFn) -> Data:
    data = Data()
    count = draw(st.integers(min_value=1, max_value=len(IDS)))
    for n, cid in enumerate(IDS[:count]):
        metadata = draw(
            st.none() | st.dictionaries(st.sampled_from(["tier", "n", "flag", "ends"]), meta_values)
        )
        created = draw(moments())
        data.customers.append(
            {
                "id": cid,
                "email": draw(st.none() | texts.map(lambda t, n=n: f"{t.lower()}{n}@x.co")),
                "first_name": draw(optional_texts),
                "last_name": None,
                "company_name": draw(optional_texts),
                "phone": None,
                "has_account": draw(st.booleans()),
                "metadata": metadata,
                "created_by": None,
                "created_at": created,
                "updated_at": created,
                "deleted_at": draw(st.sampled_from([None, None, None, NOW])),
                "version": 1,
            }
        )
        for a in range(draw(st.integers(min_value=0, max_value=2))):
            data.addresses.append(
                {
                    "id": f"{cid}-a{a}",
                    "customer_id": cid,
                    "country_code": draw(st.none() | st.sampled_from(["de", "fr", "DE"])),
                    "city": draw(optional_texts),
                    "created_at": NOW,
                    "updated_at": NOW,
                    "deleted_at": draw(st.sampled_from([None, None, NOW])),
                }
            )
        for o in range(draw(st.integers(min_value=0, max_value=3))):
            data.orders.append(
                {
                    "id": f"{cid}-o{o}",
                    "customer_id": cid,
                    "currency_code": draw(st.sampled_from(["eur", "usd"])),
                    "total": draw(amounts),
                    "status": draw(st.sampled_from(["pending", "completed", "canceled", "draft"])),
                    "placed_at": draw(st.none() | moments()),
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            )
        for gid in GROUPS:
            if draw(st.booleans()):
                data.memberships.append((gid, cid))
    return data


def times() -> st.SearchStrategy[Any]:
    return st.one_of(
        iso,
        st.just("$now"),
        DAYS.map(lambda d: {"$ago": f"{d}d"}),
        DAYS.map(lambda d: {"$ahead": f"{d}d"}),
        st.integers(min_value=1, max_value=48).map(lambda h: {"$ago": f"{h}h"}),
    )


def text_tests() -> st.SearchStrategy[Any]:
    return st.one_of(
        optional_texts,
        st.lists(texts, min_size=1, max_size=3),
        st.fixed_dictionaries({"$ne": optional_texts}),
        st.fixed_dictionaries({"$nin": st.lists(texts, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"$like": patterns}),
        st.fixed_dictionaries({"$ilike": patterns}),
        st.fixed_dictionaries({"$exists": st.booleans()}),
    )


def ranges(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    ops = st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"])
    return st.dictionaries(ops, values, min_size=1, max_size=2)


def order_options() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "currency": st.sampled_from(["eur", "usd", "EUR"]),
            "last": DAYS.map(lambda d: f"{d}d"),
        },
    )


def leaves() -> st.SearchStrategy[dict[str, Any]]:
    def pair(name: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
        return values.map(lambda v: {name: v})

    def order(name: str, values: st.SearchStrategy[Any], currency: bool = False) -> Any:
        def merged(options: dict[str, Any], test: dict[str, Any]) -> dict[str, Any]:
            if currency:
                options = {"currency": "eur", **options}
            return {name: {**options, **test}}

        return st.builds(merged, order_options(), ranges(values))

    meta_scalars = st.one_of(texts, st.integers(-3, 3), st.booleans(), iso, times())
    meta = st.one_of(
        meta_scalars.filter(lambda v: not isinstance(v, dict) and v != "$now"),
        st.none(),
        st.lists(st.one_of(texts, st.integers(-3, 3), st.booleans()), min_size=1, max_size=3),
        st.fixed_dictionaries(
            {"$ne": st.one_of(st.none(), texts, st.integers(-3, 3), st.booleans())}
        ),
        ranges(
            st.one_of(st.integers(-3, 3), st.decimals(-3, 3, places=1).map(float), texts, times())
        ),
        st.fixed_dictionaries({"$like": patterns}),
        st.fixed_dictionaries({"$exists": st.booleans()}),
    )
    return st.one_of(
        pair("email", text_tests()),
        pair("first_name", text_tests()),
        pair("company_name", text_tests()),
        pair("has_account", st.booleans() | st.fixed_dictionaries({"$ne": st.booleans()})),
        pair("created_at", ranges(times()) | st.fixed_dictionaries({"$exists": st.booleans()})),
        pair("addresses.country_code", text_tests()),
        pair("addresses.city", text_tests()),
        st.builds(
            lambda k, v: {f"metadata.{k}": v}, st.sampled_from(["tier", "n", "flag", "ends"]), meta
        ),
        order("orders.count", st.integers(0, 3)),
        order("orders.total", amounts.map(float), currency=True),
        order("orders.first_placed_at", times()),
        order("orders.last_placed_at", times()),
        pair("groups.id", st.sampled_from(GROUPS) | st.lists(st.sampled_from(GROUPS), min_size=1)),
        pair(
            "groups.id",
            st.fixed_dictionaries({"$nin": st.lists(st.sampled_from(GROUPS), min_size=1)}),
        ),
    )


def conditions() -> st.SearchStrategy[dict[str, Any]]:
    return st.recursive(
        leaves(),
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(lambda parts: {"$or": parts}),
            st.lists(inner, min_size=1, max_size=3).map(lambda parts: {"$and": parts}),
            st.tuples(inner, inner).map(lambda pair: {**pair[0], **pair[1]}),
        ),
        max_leaves=5,
    )


@st.composite
def rules(draw: st.DrawFn) -> dict[str, Any]:
    rule = dict(draw(conditions()))
    if draw(st.booleans()):
        rule["include"] = draw(st.lists(st.sampled_from(IDS), max_size=2))
    if draw(st.booleans()):
        rule["exclude"] = draw(st.lists(st.sampled_from(IDS), max_size=2))
    return rule


def load(conn: Any, data: Data) -> None:
    for table in (tables.membership, customer_order, customer_address, tables.customer):
        conn.execute(delete(table))
    conn.execute(insert(tables.customer), data.customers)
    if data.addresses:
        conn.execute(insert(customer_address), data.addresses)
    if data.orders:
        conn.execute(insert(customer_order), data.orders)
    if data.memberships:
        rows = [
            {"customer_group_id": g, "customer_id": c, "created_at": NOW}
            for g, c in data.memberships
        ]
        conn.execute(insert(tables.membership), rows)


def snapshots(data: Data) -> list[Snapshot]:
    found = []
    for row in data.customers:
        cid = row["id"]
        found.append(
            Snapshot(
                customer=Customer(**row),
                addresses=[
                    CustomerAddress(**a)
                    for a in data.addresses
                    if a["customer_id"] == cid and a["deleted_at"] is None
                ],
                orders=[
                    Order(o["currency_code"], o["total"], o["status"], o["placed_at"])
                    for o in data.orders
                    if o["customer_id"] == cid
                ],
                group_ids=frozenset(g for g, c in data.memberships if c == cid),
            )
        )
    return found


def test_given_random_customers_and_rules_then_python_and_sql_decide_the_same_members(gw):
    with gw.engine.begin() as conn:
        for gid in GROUPS:
            conn.execute(
                insert(tables.customer_group),
                {"id": gid, "name": gid, "created_at": NOW, "updated_at": NOW},
            )
    deleted_group = {"deleted_at": NOW}
    with gw.engine.begin() as conn:  # a deleted group's members are members of nothing
        conn.execute(
            tables.customer_group.update().where(tables.customer_group.c.id == "g2"),
            deleted_group,
        )

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(data=data_sets(), raw_rules=st.lists(rules(), min_size=1, max_size=4))
    def check(data: Data, raw_rules: list[dict[str, Any]]) -> None:
        with gw.engine.begin() as conn:
            load(conn, data)
        shots = snapshots(data)
        for shot in shots:  # the deleted group g2 counts for nobody
            object.__setattr__(shot, "group_ids", shot.group_ids - {"g2"})
        with gw.engine.connect() as conn:
            for raw in raw_rules:
                rule = parse_rule(raw)
                in_sql = sql_rules.matching_ids(conn, rule, NOW)
                in_python = {s.customer.id for s in shots if rule.matches(s, NOW)}
                assert in_sql == in_python, raw

    check()


def test_an_order_total_is_summed_exactly(gw):
    """0.1 + 0.2 is 0.3: SQLite keeps numeric columns as floats, the rule must not."""
    data = Data(
        customers=[
            {
                "id": "c0",
                "has_account": False,
                "created_at": NOW,
                "updated_at": NOW,
            }
        ],
        orders=[
            {
                "id": f"o{n}",
                "customer_id": "c0",
                "currency_code": "eur",
                "total": Decimal(total),
                "status": "completed",
                "placed_at": NOW,
                "created_at": NOW,
                "updated_at": NOW,
            }
            for n, total in enumerate(["0.1", "0.2"])
        ],
    )
    with gw.engine.begin() as conn:
        load(conn, data)
        rule = parse_rule({"orders.total": {"currency": "eur", "$lte": 0.3}})
        assert sql_rules.matching_ids(conn, rule, NOW) == {"c0"}
