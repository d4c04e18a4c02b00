"""A smart group's rule is validated before anything is saved: each mistake is an
``InvalidData`` naming where it is and what is accepted there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from groupwire import InvalidData
from groupwire.domain.models import Customer
from groupwire.domain.rules import Order, Reason, Snapshot, explain, parse_rule

NOW = datetime(2026, 12, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ([], "rule must be a JSON object"),
        ({}, "rule must have a condition or an include list"),
        ({"emale": "a@b.co"}, "rule.emale: unknown field 'emale'"),
        ({"email": {"$regex": "x"}}, "rule.email: unknown operator '$regex'"),
        ({"email": {"$gt": "x"}}, "rule.email.$gt: operator not allowed here"),
        ({"has_account": "yes"}, "rule.has_account takes true or false"),
        ({"created_at": {"$gte": "yesterday"}}, "rule.created_at.$gte takes a time"),
        ({"created_at": {"$gte": {"$ago": "14 days"}}}, "'14 days' is not a duration"),
        ({"orders.total": {"$gte": 1000}}, "rule.orders.total needs a currency"),
        ({"orders.total": {"currency": "euro", "$gte": 1}}, "currency must be an ISO 4217"),
        ({"orders.total": {"currency": "eur", "$gte": 1.23456}}, "at most 4 decimal places"),
        ({"orders.count": {"$gte": 1, "last": "90x"}}, "rule.orders.count.last: '90x'"),
        ({"orders.count": {"$gte": -1}}, "takes a whole number"),
        ({"metadata.a.b": "x"}, "a metadata key is letters, digits, _ and - only"),
        ({"addresses.planet": "x"}, "unknown field 'addresses.planet'"),
        ({"groups.id": {"$exists": True}}, "rule.groups.id.$exists: operator not allowed"),
        ({"$or": []}, "rule.$or must be a non-empty list of objects"),
        ({"$or": [{"email": "a@b.co"}, "x"]}, "rule.$or[1] must be a JSON object"),
        ({"$and": [{"include": ["c"]}]}, "include and exclude belong at the top"),
        ({"email": {"$in": []}}, "rule.email.$in takes a non-empty list"),
        ({"email": {"$like": "abc\\"}}, "cannot end with a lone escape character"),
        ({"include": "cus_1"}, "rule.include must be a list of customer ids"),
        ({"metadata.flag": {"$gt": True}}, "true and false cannot be ordered"),
    ],
)
def test_given_a_bad_rule_then_invalid_data_says_where_and_why(rule, message):
    with pytest.raises(InvalidData) as raised:
        parse_rule(rule)

    assert message in raised.value.message


def test_the_documented_vip_and_trial_rules_parse():
    vip = parse_rule({"orders.total": {"currency": "EUR", "$gte": 1000, "last": "365d"}})
    trial = parse_rule({"created_at": {"$gte": {"$ago": "14d"}}})

    assert vip.dependencies == {"orders", "time"}
    assert trial.dependencies == {"customer.created_at", "time"}


def customer(**fields) -> Customer:
    return Customer(id="c", created_at=NOW, updated_at=NOW, **fields)


def test_vip_counts_only_orders_of_the_window_and_currency_that_are_not_canceled():
    vip = parse_rule({"orders.total": {"currency": "eur", "$gte": 1000, "last": "365d"}})

    def orders(*items):
        return Snapshot(customer(), orders=[Order(*item) for item in items])

    old = NOW - timedelta(days=400)
    assert vip.matches(orders(("eur", Decimal(1000), "completed", NOW)), NOW)
    assert not vip.matches(orders(("eur", Decimal(1000), "completed", old)), NOW)
    assert not vip.matches(orders(("usd", Decimal(1000), "completed", NOW)), NOW)
    assert not vip.matches(orders(("eur", Decimal(1000), "canceled", NOW)), NOW)
    assert vip.matches(
        orders(
            ("eur", Decimal("999.99"), "pending", NOW), ("eur", Decimal("0.01"), "pending", NOW)
        ),
        NOW,
    )


def test_include_and_exclude_override_the_condition_and_deleted_customers_never_match():
    rule = parse_rule({"first_name": "Ada", "include": ["c"], "exclude": []})
    assert rule.matches(Snapshot(customer(first_name="Bob")), NOW)
    assert not rule.matches(Snapshot(customer(first_name="Ada", deleted_at=NOW)), NOW)
    excluded = parse_rule({"first_name": "Ada", "exclude": ["c"]})
    assert not excluded.matches(Snapshot(customer(first_name="Ada")), NOW)


def test_relative_times_and_metadata_times_compare_at_now():
    trial = parse_rule({"metadata.trial_ends_at": {"$gt": "$now"}})
    ends = (NOW + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    assert trial.matches(Snapshot(customer(metadata={"trial_ends_at": ends})), NOW)
    assert not trial.matches(
        Snapshot(customer(metadata={"trial_ends_at": ends})), NOW + timedelta(days=2)
    )
    assert not trial.matches(Snapshot(customer(metadata={})), NOW)


def test_explain_names_the_top_level_clauses_that_hold_and_the_or_branch_that_held():
    rule = parse_rule(
        {
            "orders.total": {"currency": "eur", "$gte": 1000, "last": "365d"},
            "$or": [{"company_name": {"$exists": True}}, {"email": {"$ilike": "%@acme.example"}}],
            "has_account": True,
        }
    )
    big = [Order("eur", Decimal(1200), "completed", NOW)]
    member = Snapshot(customer(email="ada@acme.example", has_account=True), orders=big)

    assert explain(rule, member, NOW) == [
        Reason("clause", {"orders.total": {"currency": "eur", "$gte": 1000, "last": "365d"}}),
        Reason("clause", {"email": {"$ilike": "%@acme.example"}}, branch=1),
        Reason("clause", {"has_account": True}),
    ]
    first = Snapshot(customer(company_name="ACME", has_account=True), orders=big)
    assert explain(rule, first, NOW)[1] == Reason(
        "clause", {"company_name": {"$exists": True}}, branch=0
    )
    # Not a member: no reason, even though some clauses hold.
    assert explain(rule, Snapshot(customer(email="ada@acme.example", has_account=True)), NOW) == []


def test_explain_names_the_include_list_and_nothing_for_an_excluded_customer():
    rule = parse_rule({"first_name": "Ada", "include": ["c"]})
    assert explain(rule, Snapshot(customer(first_name="Bob")), NOW) == [Reason("include")]
    assert explain(rule, Snapshot(customer(first_name="Ada")), NOW) == [
        Reason("include"),
        Reason("clause", {"first_name": "Ada"}),
    ]
    excluded = parse_rule({"first_name": "Ada", "exclude": ["c"]})
    assert explain(excluded, Snapshot(customer(first_name="Ada")), NOW) == []
