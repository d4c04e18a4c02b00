"""/admin/customers/{id}/addresses: Medusa 2.21's customer address routes, with events."""

from __future__ import annotations

from typing import Any

from groupwire import HookRejected, hookimpl
from tests.api.conftest import all_events, assert_error
from tests.api.test_customer_groups import create_customer

MEDUSA_ADDRESS_DEFAULTS = {
    "id",
    "address_name",
    "company",
    "customer_id",
    "first_name",
    "last_name",
    "address_1",
    "address_2",
    "city",
    "province",
    "postal_code",
    "country_code",
    "phone",
    "metadata",
    "created_at",
    "updated_at",
}
EVERY_ADDRESS_FIELD = MEDUSA_ADDRESS_DEFAULTS | {
    "is_default_shipping",
    "is_default_billing",
    "deleted_at",
}


def add_address(client: Any, customer_id: str, **body: Any) -> dict[str, Any]:
    """Create an address; returns it (read back through ``fields=*addresses``)."""
    response = client.post(
        f"/admin/customers/{customer_id}/addresses", params={"fields": "*addresses"}, json=body
    )
    assert response.status_code == 200, response.text
    return response.json()["customer"]["addresses"][-1]  # type: ignore[no-any-return]


def addresses_of(client: Any, customer_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/admin/customers/{customer_id}", params={"fields": "*addresses"})
    assert response.status_code == 200, response.text
    return response.json()["customer"]["addresses"]  # type: ignore[no-any-return]


def test_given_a_body_when_creating_an_address_then_the_customer_is_returned(client, gw):
    customer = create_customer(client, "john@example.com", first_name="John")

    response = client.post(
        f"/admin/customers/{customer['id']}/addresses",
        json={"first_name": "John", "last_name": "Doe", "address_1": "Test street 1"},
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"customer": customer}  # no addresses unless asked for
    [address] = addresses_of(client, customer["id"])
    assert set(address) == EVERY_ADDRESS_FIELD
    assert address["id"].startswith("cuaddr_") and len(address["id"]) == len("cuaddr_") + 26
    assert address["customer_id"] == customer["id"]
    assert address["address_1"] == "Test street 1"
    assert address["is_default_shipping"] is False
    assert address["is_default_billing"] is False
    assert address["address_name"] is None and address["metadata"] is None
    assert address["deleted_at"] is None


def test_given_fields_star_addresses_when_creating_then_the_addresses_are_in_the_customer(client):
    customer = create_customer(client, "john@example.com")

    response = client.post(
        f"/admin/customers/{customer['id']}/addresses?fields=*addresses",
        json={"first_name": "John", "last_name": "Doe", "address_1": "Test street 1"},
    )

    assert response.status_code == 200, response.text
    [address] = response.json()["customer"]["addresses"]
    assert (address["first_name"], address["last_name"]) == ("John", "Doe")


def test_given_a_default_shipping_address_when_adding_another_default_then_only_the_new_one_is(
    client, gw
):
    customer = create_customer(client, "john@example.com")
    first = add_address(client, customer["id"], address_1="Test street 1", is_default_shipping=True)

    second = add_address(
        client, customer["id"], address_1="Test street 2", is_default_shipping=True
    )

    by_id = {a["id"]: a for a in addresses_of(client, customer["id"])}
    assert by_id[first["id"]]["is_default_shipping"] is False
    assert by_id[second["id"]]["is_default_shipping"] is True
    created, cleared, created_again = all_events(gw)[1:]
    assert (created.type, created_again.type) == ("customer.address_created",) * 2
    assert cleared.type == "customer.address_updated"
    assert cleared.subject == customer["id"]
    assert cleared.data == {
        "id": first["id"],
        "customer_id": customer["id"],
        "changes": {"is_default_shipping": {"old": True, "new": False}},
    }


def test_given_a_default_billing_address_when_adding_another_default_then_only_the_new_one_is(
    client,
):
    customer = create_customer(client, "john@example.com")
    first = add_address(client, customer["id"], address_1="Street 1", is_default_billing=True)
    shipping = add_address(client, customer["id"], address_1="Street 2", is_default_shipping=True)

    second = add_address(client, customer["id"], address_1="Street 3", is_default_billing=True)

    by_id = {a["id"]: a for a in addresses_of(client, customer["id"])}
    assert by_id[first["id"]]["is_default_billing"] is False
    assert by_id[second["id"]]["is_default_billing"] is True
    assert by_id[shipping["id"]]["is_default_shipping"] is True  # the other kind is untouched


def test_given_addresses_when_updating_one_to_default_then_the_old_default_is_cleared(client, gw):
    customer = create_customer(client, "john@example.com")
    old = add_address(client, customer["id"], address_1="Street 1", is_default_shipping=True)
    new = add_address(client, customer["id"], address_1="Street 2")
    before = len(all_events(gw))

    response = client.post(
        f"/admin/customers/{customer['id']}/addresses/{new['id']}",
        json={"first_name": "jane", "is_default_shipping": True},
    )

    assert response.status_code == 200, response.text
    assert response.json()["customer"]["id"] == customer["id"]
    by_id = {a["id"]: a for a in addresses_of(client, customer["id"])}
    assert by_id[old["id"]]["is_default_shipping"] is False
    assert by_id[new["id"]]["is_default_shipping"] is True
    assert by_id[new["id"]]["first_name"] == "jane"
    cleared, updated = all_events(gw)[before:]
    assert cleared.data["id"] == old["id"]
    assert updated.type == "customer.address_updated"
    assert updated.data == {
        "id": new["id"],
        "customer_id": customer["id"],
        "changes": {
            "is_default_shipping": {"old": False, "new": True},
            "first_name": {"old": None, "new": "jane"},
        },
    }


def test_given_an_address_when_updating_with_fields_then_the_customer_shows_the_change(client, gw):
    customer = create_customer(client, "john@example.com")
    address = add_address(
        client, customer["id"], first_name="John", last_name="Doe", metadata={"a": 1, "b": 2}
    )
    url = f"/admin/customers/{customer['id']}/addresses/{address['id']}"

    response = client.post(
        f"{url}?fields=*addresses", json={"first_name": "Jane", "metadata": {"a": "", "c": 3}}
    )

    assert response.status_code == 200, response.text
    [updated] = response.json()["customer"]["addresses"]
    assert (updated["first_name"], updated["last_name"]) == ("Jane", "Doe")
    assert updated["metadata"] == {"b": 2, "c": 3}
    assert updated["updated_at"] >= address["updated_at"]
    events = len(all_events(gw))
    assert client.post(url, json={"first_name": "Jane"}).status_code == 200  # no change
    assert client.post(url, json={}).status_code == 200
    assert len(all_events(gw)) == events


def test_given_an_address_when_retrieving_then_medusas_default_fields_are_returned(client):
    customer = create_customer(client, "john@example.com")
    address = add_address(client, customer["id"], city="Paris", is_default_billing=True)
    url = f"/admin/customers/{customer['id']}/addresses/{address['id']}"

    plain = client.get(url)
    picked = client.get(url, params={"fields": "+is_default_billing,-metadata"})
    only = client.get(url, params={"fields": "city"})

    assert plain.status_code == 200, plain.text
    assert set(plain.json()["address"]) == MEDUSA_ADDRESS_DEFAULTS
    assert plain.json()["address"]["city"] == "Paris"
    assert picked.json()["address"]["is_default_billing"] is True
    assert "metadata" not in picked.json()["address"]
    assert only.json() == {"address": {"id": address["id"], "city": "Paris"}}
    unknown = client.get(url, params={"fields": "nope"})  # ignored, as Medusa ignores it
    assert unknown.status_code == 200 and unknown.json()["address"] == {"id": address["id"]}
    assert_error(client.get(url, params={"fields": "*nope"}), 400, "invalid_data")


def test_given_an_address_when_deleting_then_it_is_gone_and_the_parent_is_returned(client, gw):
    customer = create_customer(client, "john@example.com")
    kept = add_address(client, customer["id"], address_1="Street 1")
    gone = add_address(client, customer["id"], address_1="Street 2", is_default_shipping=True)
    url = f"/admin/customers/{customer['id']}/addresses/{gone['id']}"

    response = client.delete(url, params={"fields": "*addresses"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in ("id", "object", "deleted")} == {
        "id": gone["id"],
        "object": "customer_address",
        "deleted": True,
    }
    assert body["parent"]["id"] == customer["id"]
    assert [a["id"] for a in body["parent"]["addresses"]] == [kept["id"]]
    assert_error(client.get(url), 404, "not_found")
    assert_error(client.delete(url), 404, "not_found")
    deleted = all_events(gw)[-1]
    assert deleted.type == "customer.address_deleted"
    assert deleted.subject == deleted.partition == customer["id"]
    assert deleted.data == {"id": gone["id"], "customer_id": customer["id"], "reason": "deleted"}
    # the deleted default no longer counts: a new default needs no clearing
    before = len(all_events(gw))
    add_address(client, customer["id"], address_1="Street 3", is_default_shipping=True)
    assert [e.type for e in all_events(gw)[before:]] == ["customer.address_created"]


def test_given_addresses_when_listing_then_the_customers_addresses_and_count_return(client):
    customer = create_customer(client, "test@me.com")
    other = create_customer(client, "other@me.com")
    for street in ("Test street 1", "Test street 2", "Test street 3"):
        add_address(client, customer["id"], first_name="Test", address_1=street)
    add_address(client, other["id"], first_name="Test TEST", address_1="NOT street 1")

    response = client.get(f"/admin/customers/{customer['id']}/addresses")

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["count"], body["offset"], body["limit"]) == (3, 0, 50)
    assert [a["address_1"] for a in body["addresses"]] == [
        "Test street 1",
        "Test street 2",
        "Test street 3",
    ]
    assert {a["customer_id"] for a in body["addresses"]} == {customer["id"]}
    assert set(body["addresses"][0]) == MEDUSA_ADDRESS_DEFAULTS


def test_given_addresses_when_listing_with_q_filters_paging_and_order_then_only_matches(client):
    customer = create_customer(client, "test@me.com")
    cid = customer["id"]
    add_address(
        client,
        cid,
        first_name="John",
        address_1="Huntingdon 123",
        city="Paris",
        country_code="fr",
        company="Acme",
        postal_code="75001",
        province="IDF",
    )
    add_address(
        client,
        cid,
        first_name="Jane",
        address_1="Horseshoe 555",
        city="Berlin",
        country_code="de",
        postal_code="10115",
    )
    add_address(
        client,
        cid,
        first_name="Jack",
        address_1="Hawkins 12",
        city="Lyon",
        country_code="fr",
        company="ACME 100%",
    )

    def streets(**params: Any) -> list[str]:
        response = client.get(f"/admin/customers/{cid}/addresses", params=params)
        assert response.status_code == 200, response.text
        return [a["address_1"] for a in response.json()["addresses"]]

    assert streets(q="12") == ["Huntingdon 123", "Hawkins 12"]
    assert streets(q="acme") == ["Huntingdon 123", "Hawkins 12"]
    assert streets(q="100%") == ["Hawkins 12"]
    assert streets(q="BERLIN") == ["Horseshoe 555"]
    assert streets(country_code="fr") == ["Huntingdon 123", "Hawkins 12"]
    assert streets(city=["Paris", "Berlin"]) == ["Huntingdon 123", "Horseshoe 555"]
    assert streets(company="Acme") == ["Huntingdon 123"]
    assert streets(postal_code="10115") == ["Horseshoe 555"]
    assert streets(province="IDF") == ["Huntingdon 123"]
    assert streets(order="-address_1", limit=2) == ["Huntingdon 123", "Horseshoe 555"]
    assert streets(order="city", offset=1) == ["Hawkins 12", "Huntingdon 123"]  # Lyon, Paris
    only_ids = client.get(f"/admin/customers/{cid}/addresses", params={"fields": "id,city"})
    assert {tuple(a) for a in only_ids.json()["addresses"]} == {("id", "city")}


def test_given_filters_medusa_does_not_take_when_listing_then_400(client):
    customer = create_customer(client, "test@me.com")
    url = f"/admin/customers/{customer['id']}/addresses"

    for params in (
        {"id": "cuaddr_1"},
        {"address_name": "Home"},
        {"is_default_shipping": "true"},
        {"nope": "1"},
        {"order": "nope"},
        {"limit": "-1"},
    ):
        assert_error(client.get(url, params=params), 400, "invalid_data")


def test_given_customers_when_listing_or_retrieving_with_addresses_then_each_has_its_own(client):
    alice = create_customer(client, "alice@example.com")
    bob = create_customer(client, "bob@example.com")
    add_address(client, alice["id"], city="Paris")
    add_address(client, alice["id"], city="Lyon")

    listed = client.get("/admin/customers", params={"fields": "+addresses"})
    picked = client.get(
        f"/admin/customers/{alice['id']}", params={"fields": "email,addresses.city"}
    )

    assert listed.status_code == 200, listed.text
    by_email = {c["email"]: c for c in listed.json()["customers"]}
    assert [a["city"] for a in by_email["alice@example.com"]["addresses"]] == ["Paris", "Lyon"]
    assert by_email["bob@example.com"]["addresses"] == []
    assert set(by_email["alice@example.com"]["addresses"][0]) == EVERY_ADDRESS_FIELD
    assert "addresses" not in client.get(f"/admin/customers/{bob['id']}").json()["customer"]
    assert picked.json()["customer"]["addresses"] == [
        {"id": a["id"], "city": a["city"]} for a in addresses_of(client, alice["id"])
    ]


def test_given_an_unknown_customer_or_address_then_every_route_answers_404(client, gw):
    customer = create_customer(client, "john@example.com")
    other = create_customer(client, "other@example.com")
    theirs = add_address(client, other["id"], city="Paris")
    before = len(all_events(gw))
    missing = "/admin/customers/cus_missing/addresses"
    mine = f"/admin/customers/{customer['id']}/addresses"

    body = assert_error(client.get(missing), 404, "not_found")
    assert body["message"] == "Customer with id: cus_missing not found"
    assert_error(client.post(missing, json={"city": "Paris"}), 404, "not_found")
    assert_error(client.get(f"{missing}/{theirs['id']}"), 404, "not_found")
    for method, url in (
        ("GET", f"{mine}/cuaddr_missing"),
        ("POST", f"{mine}/cuaddr_missing"),
        ("DELETE", f"{mine}/cuaddr_missing"),
        ("GET", f"{mine}/{theirs['id']}"),  # another customer's address
        ("POST", f"{mine}/{theirs['id']}"),
        ("DELETE", f"{mine}/{theirs['id']}"),
    ):
        kwargs = {"json": {"city": "Lyon"}} if method == "POST" else {}
        body = assert_error(client.request(method, url, **kwargs), 404, "not_found")
        assert body["message"].startswith("Customer address with id: ")
    assert len(all_events(gw)) == before


def test_given_invalid_bodies_when_creating_or_updating_then_400_and_nothing_written(client, gw):
    customer = create_customer(client, "john@example.com")
    address = add_address(client, customer["id"], city="Paris")
    before = len(all_events(gw))
    urls = (
        f"/admin/customers/{customer['id']}/addresses",
        f"/admin/customers/{customer['id']}/addresses/{address['id']}",
    )

    for url in urls:
        for body in (
            {"nope": 1},
            {"city": 123},
            {"is_default_shipping": "true"},
            {"is_default_billing": None},
            {"metadata": "x"},
            {"additional": {"a": 1}},
            {"address_1": "a\x00b"},
        ):
            response = client.post(url, json=body)
            message = assert_error(response, 400, "invalid_data")["message"]
            assert message.startswith("Invalid request: "), message

    unknown = client.post(urls[0], json={"nope": 1}).json()["message"]
    assert unknown == "Invalid request: Unrecognized fields: 'nope'"
    assert len(all_events(gw)) == before
    assert len(addresses_of(client, customer["id"])) == 1


class NoPoBoxes:
    @hookimpl
    def before_create_customer_address(self, customer, draft, context):
        if (draft.address_1 or "").startswith("PO Box"):
            raise HookRejected("PO boxes are not shipping addresses")

    @hookimpl
    def before_update_customer_address(self, customer, address, update, context):
        if str(update.values.get("address_1", "")).startswith("PO Box"):
            raise HookRejected("PO boxes are not shipping addresses")

    @hookimpl
    def before_delete_customer_address(self, customer, address, reason, context):
        if address.is_default_shipping and reason == "deleted":
            raise HookRejected("the default shipping address stays")


def test_given_a_vetoing_hook_when_changing_addresses_then_400_and_nothing_written(client, gw):
    customer = create_customer(client, "john@example.com")
    default = add_address(client, customer["id"], address_1="Main St 1", is_default_shipping=True)
    gw.register(NoPoBoxes())
    before = len(all_events(gw))
    url = f"/admin/customers/{customer['id']}/addresses"

    create = client.post(url, json={"address_1": "PO Box 7", "is_default_shipping": True})
    update = client.post(f"{url}/{default['id']}", json={"address_1": "PO Box 7"})
    delete = client.delete(f"{url}/{default['id']}")

    for response in (create, update, delete):
        body = assert_error(response, 400, "not_allowed")
    assert body["message"] == "the default shipping address stays"
    assert create.json()["message"] == "PO boxes are not shipping addresses"
    assert len(all_events(gw)) == before
    assert addresses_of(client, customer["id"]) == [default]


def test_given_a_customer_with_addresses_when_deleting_it_then_its_addresses_go_too(client, gw):
    customer = create_customer(client, "john@example.com")
    first = add_address(client, customer["id"], city="Paris", is_default_billing=True)
    second = add_address(client, customer["id"], city="Lyon")
    gone = add_address(client, customer["id"], city="Nice")
    client.delete(f"/admin/customers/{customer['id']}/addresses/{gone['id']}")
    before = len(all_events(gw))

    assert client.delete(f"/admin/customers/{customer['id']}").status_code == 200

    events = all_events(gw)[before:]
    assert [(e.type, e.data) for e in events] == [
        (
            "customer.address_deleted",
            {"id": first["id"], "customer_id": customer["id"], "reason": "customer_deleted"},
        ),
        (
            "customer.address_deleted",
            {"id": second["id"], "customer_id": customer["id"], "reason": "customer_deleted"},
        ),
        ("customer.deleted", {"id": customer["id"], "email": "john@example.com", "group_count": 0}),
    ]
    assert_error(client.get(f"/admin/customers/{customer['id']}/addresses"), 404, "not_found")
    # the email is free again; the new customer starts with no addresses
    again = create_customer(client, "john@example.com")
    assert addresses_of(client, again["id"]) == []


def test_given_read_and_write_keys_then_reads_need_read_and_changes_need_write(client, make_client):
    customer = create_customer(client, "john@example.com")
    reader, _, _ = make_client(["read"])
    url = f"/admin/customers/{customer['id']}/addresses"

    assert reader.get(url).status_code == 200
    assert_error(reader.post(url, json={"city": "Paris"}), 403, "forbidden")


def test_the_openapi_document_describes_every_address_route_and_its_responses(client):
    paths = client.get("/openapi.json").json()["paths"]

    listing = paths["/admin/customers/{id}/addresses"]
    one = paths["/admin/customers/{id}/addresses/{address_id}"]

    assert set(listing) == {"get", "post"} and set(one) == {"get", "post", "delete"}
    expected = {
        ("get", "listing"): "AddressListResponse",
        ("post", "listing"): "CustomerResponse",
        ("get", "one"): "AddressResponse",
        ("post", "one"): "CustomerResponse",
        ("delete", "one"): "AddressDeletedResponse",
    }
    for (method, which), model in expected.items():
        operation = (listing if which == "listing" else one)[method]
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith(f"/{model}")
        assert "404" in operation["responses"]
    query = {p["name"] for p in listing["get"]["parameters"] if p["in"] == "query"}
    assert query == {
        "fields",
        "q",
        "company",
        "city",
        "country_code",
        "province",
        "postal_code",
        "limit",
        "offset",
        "order",
    }
