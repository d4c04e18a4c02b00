"""Customers: created, updated and deleted through the service, each with its events."""

from __future__ import annotations

import pytest

from groupwire import Duplicate, InvalidData, NotFound


def test_creating_a_customer_normalises_the_email_and_emits_created(gw):
    customer = gw.customers.create(email="  Ada@Shop.Test ", first_name="Ada", metadata={"a": 1})

    assert customer.id.startswith("cus_")
    assert customer.email == "ada@shop.test"
    [event] = gw.events.list()
    assert event.type == "customer.created"
    assert event.data["email"] == "ada@shop.test"
    assert event.data["first_name"] == "Ada"
    assert event.data["metadata"] == {"a": 1}


@pytest.mark.parametrize("email", ["", "no-at-sign", "a@b", 42, "two@@x.com"])
def test_malformed_emails_are_refused(gw, email):
    with pytest.raises(InvalidData):
        gw.customers.create(email=email)
    assert gw.events.list() == []


def test_email_is_unique_among_live_customers(gw):
    first = gw.customers.create(email="ada@shop.test")
    with pytest.raises(Duplicate):
        gw.customers.create(email="ADA@shop.test")

    gw.customers.delete(first.id)
    again = gw.customers.create(email="ada@shop.test")

    assert again.id != first.id


def test_update_emits_changes_and_a_no_op_emits_nothing(gw):
    customer = gw.customers.create(email="ada@shop.test", first_name="Ada")

    gw.customers.update(customer.id, first_name="Ada")
    updated = gw.customers.update(customer.id, last_name="Lovelace", company_name="Engines")

    assert updated.last_name == "Lovelace"
    events = gw.events.list(type="customer.updated")
    assert len(events) == 1
    assert events[0].data["changes"] == {
        "last_name": {"old": None, "new": "Lovelace"},
        "company_name": {"old": None, "new": "Engines"},
    }


def test_unknown_update_fields_are_refused(gw):
    customer = gw.customers.create(email="ada@shop.test")
    with pytest.raises(InvalidData):
        gw.customers.update(customer.id, password="x")


def test_deleting_a_customer_removes_it_from_each_group_then_emits_deleted(gw):
    customer = gw.customers.create(email="ada@shop.test")
    vip = gw.groups.create(name="VIP")
    trial = gw.groups.create(name="Trial")
    gw.customers.update_groups(customer.id, add=[vip.id, trial.id])
    before = gw.events.last_sequence()

    gw.customers.delete(customer.id)

    events = gw.events.list(after=before)
    assert [e.type for e in events] == [
        "customer_group.customer_removed",
        "customer_group.customer_removed",
        "customer.deleted",
    ]
    assert {e.data["group_id"] for e in events[:2]} == {vip.id, trial.id}
    assert {e.data["reason"] for e in events[:2]} == {"customer_deleted"}
    assert events[2].data == {"id": customer.id, "email": "ada@shop.test", "group_count": 2}
    assert gw.groups.members(vip.id) == []
    with pytest.raises(NotFound):
        gw.customers.get(customer.id)


def test_customer_listing_searches_and_filters_by_group(gw):
    vip = gw.groups.create(name="VIP")
    ada = gw.customers.create(email="ada@shop.test", first_name="Ada")
    gw.customers.create(email="bob@shop.test", company_name="Adams & Co")
    gw.groups.add_customers(vip.id, [ada.id])

    assert {c.email for c in gw.customers.list(q="ada").items} == {
        "ada@shop.test",
        "bob@shop.test",
    }
    assert [c.id for c in gw.customers.list(group_ids=[vip.id]).items] == [ada.id]
    assert [c.id for c in gw.customers.list(emails=["ADA@shop.test"]).items] == [ada.id]


def test_an_email_a_hook_sets_is_normalised_and_checked_for_duplicates_too(gw):
    from groupwire import hookimpl

    class Rewrites:
        @hookimpl
        def before_update_customer(self, customer, update, context):
            if "first_name" in update.values:
                update.values["email"] = "  TAKEN@shop.test "

    gw.customers.create(email="taken@shop.test")
    ada = gw.customers.create(email="ada@shop.test")
    gw.register(Rewrites())

    with pytest.raises(Duplicate):
        gw.customers.update(ada.id, first_name="Ada")
    assert gw.customers.get(ada.id).email == "ada@shop.test"
