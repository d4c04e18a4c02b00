"""/admin/customer-groups: Medusa v2 shapes, filters, fields, ETags and batch membership."""

from __future__ import annotations

from typing import Any

from groupwire import Groupwire
from tests.api.conftest import all_events, assert_error


def create_group(client: Any, name: str, **body: Any) -> dict[str, Any]:
    response = client.post("/admin/customer-groups", json={"name": name, **body})
    assert response.status_code == 200, response.text
    return response.json()["customer_group"]  # type: ignore[no-any-return]


def create_customer(client: Any, email: str, **body: Any) -> dict[str, Any]:
    response = client.post("/admin/customers", json={"email": email, **body})
    assert response.status_code == 200, response.text
    return response.json()["customer"]  # type: ignore[no-any-return]


def test_given_a_valid_body_when_creating_then_the_group_is_returned_with_an_etag(client, gw):
    response = client.post(
        "/admin/customer-groups",
        json={"name": "VIP", "description": "Best", "metadata": {"tier": 1}},
    )

    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    group = response.json()["customer_group"]
    assert set(group) == {
        "id",
        "name",
        "description",
        "metadata",
        "created_by",
        "created_at",
        "updated_at",
        "deleted_at",
    }
    assert group["id"].startswith("cusgroup_")
    assert (group["name"], group["description"], group["metadata"]) == ("VIP", "Best", {"tier": 1})
    assert group["created_at"].endswith("Z") and group["deleted_at"] is None
    assert gw.groups.get(group["id"]).name == "VIP"
    assert [e.type for e in all_events(gw)] == ["customer_group.created"]


def test_given_a_group_when_retrieving_then_it_comes_back_and_an_unknown_id_is_404(client):
    group = create_group(client, "VIP")

    response = client.get(f"/admin/customer-groups/{group['id']}")
    assert response.status_code == 200
    assert response.json() == {"customer_group": group}
    assert response.headers["etag"] == '"1"'

    body = assert_error(client.get("/admin/customer-groups/cusgroup_nope"), 404, "not_found")
    assert body["message"] == "Customer group with id: cusgroup_nope not found"


def test_given_groups_when_listing_then_the_page_envelope_counts_all_and_pages(client):
    for name in ("a", "b", "c"):
        create_group(client, name)

    default = client.get("/admin/customer-groups").json()
    assert (default["count"], default["offset"], default["limit"]) == (3, 0, 50)
    assert [g["name"] for g in default["customer_groups"]] == ["a", "b", "c"]

    page = client.get("/admin/customer-groups", params={"limit": 1, "offset": 1}).json()
    assert (page["count"], page["offset"], page["limit"]) == (3, 1, 1)
    assert [g["name"] for g in page["customer_groups"]] == ["b"]

    newest_first = client.get("/admin/customer-groups", params={"order": "-created_at"}).json()
    assert [g["name"] for g in newest_first["customer_groups"]] == ["c", "b", "a"]
    by_name_desc = client.get("/admin/customer-groups", params={"order": "-name"}).json()
    assert [g["name"] for g in by_name_desc["customer_groups"]] == ["c", "b", "a"]


def test_given_groups_when_filtering_by_q_id_name_and_times_then_only_matches_return(client):
    wholesale = create_group(client, "Wholesale", description="B2B buyers")
    vip = create_group(client, "VIP")
    retail = create_group(client, "Retail")

    def names(**params: Any) -> list[str]:
        response = client.get("/admin/customer-groups", params=params)
        assert response.status_code == 200, response.text
        return sorted(g["name"] for g in response.json()["customer_groups"])

    assert names(q="b2b") == ["Wholesale"]
    assert names(q="i") == ["Retail", "VIP"]
    assert names(id=[vip["id"], retail["id"]]) == ["Retail", "VIP"]
    assert names(**{"id[]": [vip["id"]]}) == ["VIP"]  # Medusa's array spelling
    assert names(name=["VIP", "Retail"]) == ["Retail", "VIP"]
    assert names(**{"created_at[$gt]": wholesale["created_at"]}) == ["Retail", "VIP"]
    assert names(**{"created_at[$gte]": vip["created_at"]}) == ["Retail", "VIP"]
    assert names(**{"created_at[$lt]": vip["created_at"]}) == ["Wholesale"]
    assert names(**{"created_at[$lte]": vip["created_at"]}) == ["VIP", "Wholesale"]
    client.post(f"/admin/customer-groups/{wholesale['id']}", json={"description": "changed"})
    assert names(**{"updated_at[$gt]": retail["updated_at"]}) == ["Wholesale"]


def test_given_members_when_asking_for_fields_then_relations_and_field_lists_are_honoured(client):
    group = create_group(client, "VIP", metadata={"a": 1})
    alice = create_customer(client, "alice@example.com", first_name="Alice")
    client.post(f"/admin/customer-groups/{group['id']}/customers", json={"add": [alice["id"]]})
    url = f"/admin/customer-groups/{group['id']}"

    expanded = client.get(url, params={"fields": "*customers"}).json()["customer_group"]
    assert expanded["name"] == "VIP"
    assert [c["email"] for c in expanded["customers"]] == ["alice@example.com"]
    assert expanded["customers"][0]["first_name"] == "Alice"

    assert "customers" in client.get(url, params={"fields": "+customers"}).json()["customer_group"]

    only = client.get(url, params={"fields": "id,name"}).json()["customer_group"]
    assert only == {"id": group["id"], "name": "VIP"}

    without = client.get(url, params={"fields": "-metadata,-description"}).json()["customer_group"]
    assert "metadata" not in without and "description" not in without and "name" in without

    picked = client.get(url, params={"fields": "name,customers.email"}).json()["customer_group"]
    assert picked == {
        "id": group["id"],
        "name": "VIP",
        "customers": [{"id": alice["id"], "email": "alice@example.com"}],
    }

    listed = client.get("/admin/customer-groups", params={"fields": "*customers"}).json()
    assert [c["id"] for c in listed["customer_groups"][0]["customers"]] == [alice["id"]]

    assert_error(client.get(url, params={"fields": "*nothing"}), 400, "invalid_data")
    assert_error(client.get(url, params={"fields": "nothing.id"}), 400, "invalid_data")
    assert_error(client.get(url, params={"fields": "customers.groups.id"}), 400, "invalid_data")


def test_given_fields_naming_no_field_then_they_are_ignored_as_medusa_ignores_them(client):
    group = create_group(client, "VIP", metadata={"a": 1})
    alice = create_customer(client, "alice@example.com")
    client.post(f"/admin/customer-groups/{group['id']}/customers", json={"add": [alice["id"]]})
    url = f"/admin/customer-groups/{group['id']}"
    defaults = client.get(url).json()["customer_group"]

    def fetch(fields: str) -> dict[str, Any]:
        response = client.get(url, params={"fields": fields})
        assert response.status_code == 200, response.text
        return response.json()["customer_group"]  # type: ignore[no-any-return]

    assert fetch("+foo") == defaults
    assert fetch("-foo,+password") == defaults
    assert fetch("foo") == {"id": group["id"]}
    assert fetch("name,password") == {"id": group["id"], "name": "VIP"}
    assert fetch("customers.password") == {"id": group["id"], "customers": [{"id": alice["id"]}]}
    assert fetch("customers.*")["customers"][0]["email"] == "alice@example.com"
    listed = client.get("/admin/customer-groups", params={"fields": "+foo,-bar.baz"})
    assert listed.status_code == 200, listed.text
    assert listed.json()["customer_groups"] == [defaults]


def test_given_metadata_when_updating_then_keys_merge_and_empty_string_removes(client, gw):
    group = create_group(client, "VIP", metadata={"keep": 1, "change": "old", "drop": True})

    response = client.post(
        f"/admin/customer-groups/{group['id']}",
        json={"metadata": {"change": "new", "drop": "", "add": [1, 2]}},
    )

    assert response.status_code == 200, response.text
    updated = response.json()["customer_group"]
    assert updated["metadata"] == {"keep": 1, "change": "new", "add": [1, 2]}
    assert response.headers["etag"] == '"2"'
    metadata_event = all_events(gw)[-1]
    assert metadata_event.type == "customer_group.metadata_updated"
    assert metadata_event.data["added"] == {"add": [1, 2]}
    assert metadata_event.data["changed"] == {"change": {"old": "old", "new": "new"}}
    assert metadata_event.data["removed"] == ["drop"]

    cleared = client.post(f"/admin/customer-groups/{group['id']}", json={"metadata": None})
    assert cleared.json()["customer_group"]["metadata"] is None


def test_given_an_update_when_sending_only_some_fields_then_the_others_are_kept(client, gw):
    group = create_group(client, "VIP", description="d", metadata={"a": 1})

    response = client.post(f"/admin/customer-groups/{group['id']}", json={"name": "Gold"})

    assert response.json()["customer_group"]["name"] == "Gold"
    assert response.json()["customer_group"]["description"] == "d"
    assert response.json()["customer_group"]["metadata"] == {"a": 1}
    event = all_events(gw)[-1]
    assert event.type == "customer_group.updated"
    assert event.data["changes"] == {"name": {"old": "VIP", "new": "Gold"}}


def test_given_an_etag_when_updating_with_if_match_then_only_the_current_version_wins(client):
    group = create_group(client, "VIP")
    url = f"/admin/customer-groups/{group['id']}"

    first = client.post(url, json={"name": "Gold"}, headers={"If-Match": '"1"'})
    assert first.status_code == 200 and first.headers["etag"] == '"2"'

    stale = client.post(url, json={"name": "Silver"}, headers={"If-Match": '"1"'})
    assert_error(stale, 412, "precondition_failed")
    assert client.get(url).json()["customer_group"]["name"] == "Gold"

    assert client.post(url, json={"name": "X"}, headers={"If-Match": 'W/"2"'}).status_code == 200
    assert client.post(url, json={"name": "Y"}, headers={"If-Match": '"1", "3"'}).status_code == 200
    assert client.post(url, json={"name": "Z"}, headers={"If-Match": "*"}).status_code == 200
    assert_error(
        client.post(url, json={"name": "Q"}, headers={"If-Match": "junk"}),
        400,
        "invalid_data",
    )
    assert_error(client.delete(url, headers={"If-Match": '"1"'}), 412, "precondition_failed")
    assert client.get(url).status_code == 200
    current = client.get(url).headers["etag"]
    assert client.delete(url, headers={"If-Match": current}).status_code == 200


def test_given_members_when_deleting_a_group_then_deleted_envelope_and_members_leave(client, gw):
    group = create_group(client, "VIP")
    alice = create_customer(client, "alice@example.com")
    client.post(f"/admin/customer-groups/{group['id']}/customers", json={"add": [alice["id"]]})

    response = client.delete(f"/admin/customer-groups/{group['id']}")

    assert response.status_code == 200
    assert response.json() == {"id": group["id"], "object": "customer_group", "deleted": True}
    assert_error(client.get(f"/admin/customer-groups/{group['id']}"), 404, "not_found")
    types = [e.type for e in all_events(gw)][-2:]
    assert types == ["customer_group.customer_removed", "customer_group.deleted"]
    assert all_events(gw)[-2].data["reason"] == "group_deleted"


def test_given_customers_when_batch_adding_and_removing_then_one_call_does_both(client, gw):
    group = create_group(client, "VIP")
    a, b, c = (create_customer(client, f"{n}@example.com") for n in "abc")
    url = f"/admin/customer-groups/{group['id']}/customers"

    added = client.post(url, json={"add": [a["id"], b["id"]]}, params={"fields": "*customers"})
    assert added.status_code == 200, added.text
    assert sorted(m["id"] for m in added.json()["customer_group"]["customers"]) == sorted(
        [a["id"], b["id"]]
    )

    both = client.post(url, json={"add": [c["id"]], "remove": [a["id"]]})
    assert both.status_code == 200
    assert {m.id for m in gw.groups.members(group["id"])} == {b["id"], c["id"]}
    last_two = all_events(gw)[-2:]
    assert [(e.type, e.data["customer_id"]) for e in last_two] == [
        ("customer_group.customer_added", c["id"]),
        ("customer_group.customer_removed", a["id"]),
    ]
    assert len({e.correlation_id for e in last_two}) == 1


def test_given_one_unknown_id_when_batch_adding_then_404_and_nothing_changes(client, gw):
    group = create_group(client, "VIP")
    a, b = (create_customer(client, f"{n}@example.com") for n in "ab")
    client.post(f"/admin/customer-groups/{group['id']}/customers", json={"add": [b["id"]]})
    before = gw.events.last_sequence()

    response = client.post(
        f"/admin/customer-groups/{group['id']}/customers",
        json={"add": [a["id"], "cus_missing"], "remove": [b["id"]]},
    )

    body = assert_error(response, 404, "not_found")
    assert "cus_missing" in body["message"]
    assert {m.id for m in gw.groups.members(group["id"])} == {b["id"]}
    assert gw.events.last_sequence() == before


def test_given_an_unknown_group_when_batch_adding_then_404(client):
    alice = create_customer(client, "alice@example.com")
    response = client.post(
        "/admin/customer-groups/cusgroup_nope/customers", json={"add": [alice["id"]]}
    )
    assert_error(response, 404, "not_found")


def test_given_the_same_id_in_add_and_remove_when_batching_then_400(client, gw: Groupwire):
    group = create_group(client, "VIP")
    alice = create_customer(client, "alice@example.com")
    response = client.post(
        f"/admin/customer-groups/{group['id']}/customers",
        json={"add": [alice["id"]], "remove": [alice["id"]]},
    )
    assert_error(response, 400, "invalid_data")
    assert gw.groups.members(group["id"]) == []
