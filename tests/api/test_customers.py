"""/admin/customers: CRUD, filters, fields and the customer's side of membership."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import all_events, assert_error
from tests.api.test_customer_groups import create_customer, create_group


def test_given_a_body_when_creating_a_customer_then_it_is_returned_normalised(client, gw):
    response = client.post(
        "/admin/customers",
        json={
            "email": " Alice@Example.com ",
            "first_name": "Alice",
            "last_name": "Liddell",
            "company_name": "Wonder",
            "phone": "+44 1",
            "metadata": {"source": "pos"},
        },
    )

    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"1"'
    customer = response.json()["customer"]
    assert customer["id"].startswith("cus_")
    assert customer["email"] == "alice@example.com"
    assert customer["has_account"] is False
    assert customer["metadata"] == {"source": "pos"}
    assert [e.type for e in all_events(gw)] == ["customer.created"]


def test_given_a_customer_when_retrieving_updating_and_deleting_then_each_works(client, gw):
    customer = create_customer(client, "alice@example.com", metadata={"a": 1, "b": 2})
    url = f"/admin/customers/{customer['id']}"

    assert client.get(url).json() == {"customer": customer}

    updated = client.post(url, json={"first_name": "Al", "metadata": {"a": "", "c": 3}})
    assert updated.status_code == 200, updated.text
    assert updated.json()["customer"]["first_name"] == "Al"
    assert updated.json()["customer"]["metadata"] == {"b": 2, "c": 3}
    assert updated.headers["etag"] == '"2"'
    assert_error(
        client.post(url, json={"last_name": "x"}, headers={"If-Match": '"1"'}),
        412,
        "precondition_failed",
    )

    deleted = client.delete(url)
    assert deleted.json() == {"id": customer["id"], "object": "customer", "deleted": True}
    assert_error(client.get(url), 404, "not_found")
    assert [e.type for e in all_events(gw)] == [
        "customer.created",
        "customer.updated",
        "customer.deleted",
    ]


def test_given_customers_when_listing_with_filters_then_only_matches_return(client):
    vip = create_group(client, "VIP")
    alice = create_customer(client, "alice@example.com", company_name="Acme")
    bob = create_customer(client, "bob@example.com")
    create_customer(client, "carol@example.com")
    client.post(f"/admin/customer-groups/{vip['id']}/customers", json={"add": [bob["id"]]})

    def emails(**params: Any) -> list[str]:
        response = client.get("/admin/customers", params=params)
        assert response.status_code == 200, response.text
        return [c["email"] for c in response.json()["customers"]]

    assert emails() == ["alice@example.com", "bob@example.com", "carol@example.com"]
    assert emails(q="acme") == ["alice@example.com"]
    assert emails(email=["BOB@example.com"]) == ["bob@example.com"]
    assert emails(groups=[vip["id"]]) == ["bob@example.com"]
    assert emails(id=[alice["id"]]) == ["alice@example.com"]
    assert emails(order="-email", limit=2) == ["carol@example.com", "bob@example.com"]
    assert emails(**{"created_at[$gt]": alice["created_at"]}) == [
        "bob@example.com",
        "carol@example.com",
    ]
    page = client.get("/admin/customers", params={"limit": 1, "offset": 2}).json()
    assert (page["count"], page["offset"], page["limit"]) == (3, 2, 1)
    assert_error(client.get("/admin/customers", params={"order": "password"}), 400, "invalid_data")


def test_given_groups_when_changing_a_customers_groups_then_one_transaction_does_it(client, gw):
    vip, gold, old = (create_group(client, name) for name in ("VIP", "Gold", "Old"))
    alice = create_customer(client, "alice@example.com")
    url = f"/admin/customers/{alice['id']}/customer-groups"
    client.post(url, json={"add": [old["id"]]})

    response = client.post(
        url,
        json={"add": [vip["id"], gold["id"]], "remove": [old["id"]]},
        params={"fields": "*groups"},
    )

    assert response.status_code == 200, response.text
    customer = response.json()["customer"]
    assert sorted(g["name"] for g in customer["groups"]) == ["Gold", "VIP"]
    assert response.headers["etag"] == '"1"'
    assert {g.id for g in gw.customers.groups(alice["id"])} == {vip["id"], gold["id"]}
    last = all_events(gw)[-3:]
    assert sorted(e.type for e in last) == [
        "customer_group.customer_added",
        "customer_group.customer_added",
        "customer_group.customer_removed",
    ]


def test_given_an_unknown_group_when_changing_a_customers_groups_then_404_and_no_change(client, gw):
    vip = create_group(client, "VIP")
    alice = create_customer(client, "alice@example.com")
    before = gw.events.last_sequence()

    response = client.post(
        f"/admin/customers/{alice['id']}/customer-groups",
        json={"add": [vip["id"], "cusgroup_missing"]},
    )

    assert "cusgroup_missing" in assert_error(response, 404, "not_found")["message"]
    assert gw.customers.groups(alice["id"]) == []
    assert gw.events.last_sequence() == before
    assert_error(
        client.post("/admin/customers/cus_nope/customer-groups", json={"add": [vip["id"]]}),
        404,
        "not_found",
    )


def test_given_a_taken_email_when_creating_or_updating_then_400_invalid_data_as_medusa(client):
    create_customer(client, "alice@example.com")
    bob = create_customer(client, "bob@example.com")

    body = assert_error(
        client.post("/admin/customers", json={"email": "ALICE@example.com"}), 400, "invalid_data"
    )
    assert body == {
        "type": "invalid_data",
        "message": "Customer with email: alice@example.com, has_account: false, already exists.",
    }
    assert_error(
        client.post(f"/admin/customers/{bob['id']}", json={"email": "alice@example.com"}),
        400,
        "invalid_data",
    )


# --- customers without email (Medusa 2.21: email is nullish) ---------------------------------


def test_given_no_email_or_a_null_one_when_creating_then_200_with_email_null(client, gw):
    john = client.post("/admin/customers", json={"first_name": "John"})
    jane = client.post("/admin/customers", json={"email": None, "first_name": "Jane"})

    assert john.status_code == 200, john.text
    assert jane.status_code == 200, jane.text
    assert (john.json()["customer"]["email"], john.json()["customer"]["has_account"]) == (
        None,
        False,
    )
    assert jane.json()["customer"]["email"] is None
    listed = client.get("/admin/customers").json()
    assert listed["count"] == 2
    assert [e.data["email"] for e in all_events(gw)] == [None, None]


def test_given_customers_without_email_then_the_email_filter_finds_only_the_address(client):
    client.post("/admin/customers", json={"first_name": "John"})
    ada = create_customer(client, "ada@example.com")

    found = client.get("/admin/customers", params={"email": "ada@example.com"}).json()

    assert [c["id"] for c in found["customers"]] == [ada["id"]]


def test_given_a_customer_when_its_email_is_set_to_null_then_it_is_cleared(client, gw):
    ada = create_customer(client, "ada@example.com")

    cleared = client.post(f"/admin/customers/{ada['id']}", json={"email": None})

    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["customer"]["email"] is None
    assert all_events(gw)[-1].data["changes"] == {"email": {"old": "ada@example.com", "new": None}}


def test_given_a_taken_email_then_the_refusal_names_email_and_has_account_as_medusa_does(
    client, gw
):
    create_customer(client, "a@b.co")

    taken = client.post("/admin/customers", json={"email": "a@b.co"})

    assert (
        taken.json()["message"]
        == "Customer with email: a@b.co, has_account: false, already exists."
    )
    assert len(all_events(gw)) == 1


def test_given_an_email_that_is_no_address_then_it_is_still_refused(client, gw):
    assert_error(client.post("/admin/customers", json={"email": "nope"}), 400, "invalid_data")
    assert all_events(gw) == []


def test_given_fields_naming_no_customer_field_then_the_request_is_served_as_medusa_serves_it(
    client,
):
    alice = create_customer(client, "alice@example.com", first_name="Alice")
    url = f"/admin/customers/{alice['id']}"
    defaults = client.get(url).json()["customer"]

    padded = client.get(url, params={"fields": "+foo"})
    only_id = client.get(url, params={"fields": "foo"})
    listed = client.get("/admin/customers", params={"fields": "email,foo,groups.foo"})

    assert padded.status_code == 200 and padded.json()["customer"] == defaults
    assert only_id.status_code == 200 and only_id.json()["customer"] == {"id": alice["id"]}
    assert listed.json()["customers"] == [
        {"id": alice["id"], "email": "alice@example.com", "groups": []}
    ]
    assert_error(client.get(url, params={"fields": "*foo"}), 400, "invalid_data")


def test_given_customers_in_groups_when_ordering_by_groups_name_then_medusa_order_is_kept(
    client,
):
    bronze, gold, silver = (create_group(client, name) for name in ("Bronze", "Gold", "Silver"))
    ann = create_customer(client, "ann@example.com")  # Gold and Silver: sorts as Gold
    bob = create_customer(client, "bob@example.com")  # Bronze
    create_customer(client, "cid@example.com")  # no group: last ascending
    dee = create_customer(client, "dee@example.com")  # Silver
    for customer, groups in ((ann, [gold, silver]), (bob, [bronze]), (dee, [silver])):
        add = [g["id"] for g in groups]
        client.post(f"/admin/customers/{customer['id']}/customer-groups", json={"add": add})

    def emails(order: str, **params: Any) -> list[str]:
        response = client.get("/admin/customers", params={"order": order, **params})
        assert response.status_code == 200, response.text
        return [c["email"] for c in response.json()["customers"]]

    ascending = ["bob@example.com", "ann@example.com", "dee@example.com", "cid@example.com"]
    assert emails("groups.name") == ascending
    assert emails("-groups.name") == [
        "cid@example.com",
        "dee@example.com",
        "ann@example.com",
        "bob@example.com",
    ]
    assert emails("groups.name", limit=2, offset=1) == ascending[1:3]
    assert_error(
        client.get("/admin/customers", params={"order": "groups.secret"}), 400, "invalid_data"
    )


def test_given_a_metadata_key_set_to_null_then_it_stays_as_null_as_in_medusa(client):
    alice = create_customer(client, "alice@example.com", metadata={"a": 1, "b": 2})
    group = create_group(client, "VIP", metadata={"a": 1})

    customer = client.post(f"/admin/customers/{alice['id']}", json={"metadata": {"a": None}})
    updated = client.post(f"/admin/customer-groups/{group['id']}", json={"metadata": {"a": None}})

    assert customer.json()["customer"]["metadata"] == {"a": None, "b": 2}
    assert updated.json()["customer_group"]["metadata"] == {"a": None}
    fetched = client.get(f"/admin/customers/{alice['id']}").json()["customer"]
    assert fetched["metadata"] == {"a": None, "b": 2}
