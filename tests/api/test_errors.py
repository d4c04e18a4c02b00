"""Every error leaves in Medusa's shape, with the status the contract names."""

from __future__ import annotations

import pytest

from groupwire import HookRejected, hookimpl
from tests.api.conftest import all_events, assert_error
from tests.api.test_customer_groups import create_group


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": 42},
        {"name": "ok", "unknown": 1},
        {"name": "ok", "metadata": "not an object"},
        {"name": "   "},
        {"name": "x" * 256},
        {"name": "nul\x00byte"},
        {"name": "ok", "metadata": {"k": "\x00"}},
        [],
        "text",
    ],
)
def test_given_an_invalid_body_when_creating_a_group_then_400_invalid_data(client, gw, body):
    assert_error(client.post("/admin/customer-groups", json=body), 400, "invalid_data")
    assert all_events(gw) == []


def test_given_an_unknown_body_field_then_the_message_names_it(client):
    body = assert_error(
        client.post("/admin/customer-groups", json={"name": "a", "colour": "red"}),
        400,
        "invalid_data",
    )
    assert "Unrecognized fields: 'colour'" in body["message"]


def test_given_json_that_ends_too_early_then_400_with_javascripts_message(client):
    response = client.post(
        "/admin/customer-groups",
        content=b'{"name": ',
        headers={"Content-Type": "application/json"},
    )
    assert assert_error(response, 400, "invalid_data")["message"] == "Unexpected end of JSON input"


def test_given_other_malformed_json_then_400_in_groupwires_words(client):
    response = client.post(
        "/admin/customer-groups",
        content=b'{"name": }',
        headers={"Content-Type": "application/json"},
    )
    assert "not valid JSON" in assert_error(response, 400, "invalid_data")["message"]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "many"},
        {"limit": -1},
        {"offset": -5},
        {"order": "secret"},
        {"order": "--name"},
        {"fields": "*password"},
        {"unknown": "1"},
        {"created_at[$gt]": "yesterday"},
        {"created_at[$gt]": "9999-12-31T23:59:59-10:00"},
        {"q": "nul\x00"},
    ],
)
def test_given_an_invalid_query_when_listing_then_400_invalid_data(client, params):
    assert_error(client.get("/admin/customer-groups", params=params), 400, "invalid_data")


def test_given_a_taken_name_when_creating_or_renaming_then_400_invalid_data_as_medusa(client):
    create_group(client, "VIP")
    other = create_group(client, "Gold")

    body = assert_error(
        client.post("/admin/customer-groups", json={"name": "VIP"}), 400, "invalid_data"
    )
    assert body == {
        "type": "invalid_data",
        "message": "Customer group with name: VIP, already exists.",
    }
    renamed = client.post(f"/admin/customer-groups/{other['id']}", json={"name": "VIP"})
    assert assert_error(renamed, 400, "invalid_data") == body


class NoTestGroups:
    @hookimpl
    def before_create_customer_group(self, draft, context):
        if draft.name.startswith("test"):
            raise HookRejected("test groups are not allowed here")


def test_given_a_vetoing_hook_when_creating_then_400_not_allowed_as_medusa_answers(client, gw):
    gw.register(NoTestGroups())

    response = client.post("/admin/customer-groups", json={"name": "test group"})

    # Medusa 2.21.2 answers its own not_allowed with 400 and exactly this body
    assert response.status_code == 400, response.text
    assert response.json() == {"type": "not_allowed", "message": "test groups are not allowed here"}
    assert all_events(gw) == []
    assert client.post("/admin/customer-groups", json={"name": "real"}).status_code == 200


def test_given_an_unknown_route_or_method_then_404_or_405_in_the_same_shape(client):
    assert_error(client.get("/admin/nowhere"), 404, "not_found")
    assert_error(client.get("/nowhere"), 404, "not_found")
    response = client.put("/admin/customer-groups")
    assert_error(response, 405, "not_allowed")
    assert "allow" in response.headers


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/admin/customer-groups", "GET, POST"),
        ("/admin/customer-groups/cusgroup_x", "GET, POST, DELETE"),
        ("/admin/customers/cus_x", "GET, POST, DELETE"),
        ("/admin/customer-groups/cusgroup_x/welcome-email", "GET, PUT, DELETE"),
    ],
)
def test_given_an_unsupported_method_then_405_allow_lists_every_method_of_the_path(
    client, path, allowed
):
    response = client.patch(path, json={})
    assert_error(response, 405, "not_allowed")
    assert response.headers["allow"] == allowed


def test_given_100000_unknown_ids_then_the_404_names_five_and_counts_the_rest(client, gw):
    group = create_group(client, "VIP")
    ids = [f"cus_unknown_{n:06d}" for n in range(100_000)]
    response = client.post(f"/admin/customer-groups/{group['id']}/customers", json={"add": ids})
    body = assert_error(response, 404, "not_found")
    shown = ", ".join(ids[:5])
    assert body["message"] == (
        f"You tried to set relationship customer_id: {shown} and 99,995 more, "
        "but such entity does not exist"
    )
    assert len(response.content) < 1000
    assert [e.type for e in all_events(gw)] == ["customer_group.created"]


def test_given_two_unknown_ids_then_the_404_message_keeps_its_short_form(client):
    group = create_group(client, "VIP")
    response = client.post(
        f"/admin/customer-groups/{group['id']}/customers", json={"add": ["cus_a", "cus_b"]}
    )
    body = assert_error(response, 404, "not_found")
    assert body["message"] == (
        "You tried to set relationship customer_id: cus_a, cus_b, but such entity does not exist"
    )


def test_given_100000_invalid_ids_then_the_400_stays_short(client):
    group = create_group(client, "VIP")
    response = client.post(
        f"/admin/customer-groups/{group['id']}/customers", json={"add": [7] * 100_000}
    )
    body = assert_error(response, 400, "invalid_data")
    # Medusa names three issues; it cannot look into arrays, so it calls each one missing
    assert body["message"] == (
        "Invalid request: Field 'add, 0' is required; Field 'add, 1' is required; "
        "Field 'add, 2' is required"
    )
    assert len(response.content) < 1000


def test_given_a_huge_unknown_field_name_then_the_400_does_not_echo_it(client):
    response = client.post("/admin/customer-groups", json={"name": "G", "x" * 100_000: 1})
    assert_error(response, 400, "invalid_data")
    assert len(response.content) < 1000


@pytest.mark.parametrize("if_match", ['"abc"', "junk", '"1', 'W/"x"', '"1", nope'])
def test_given_a_malformed_if_match_then_400_invalid_data_and_nothing_changes(client, gw, if_match):
    group = create_group(client, "VIP")
    url = f"/admin/customer-groups/{group['id']}"
    update = client.post(url, json={"name": "Gold"}, headers={"If-Match": if_match})
    assert "If-Match" in assert_error(update, 400, "invalid_data")["message"]
    assert_error(client.delete(url, headers={"If-Match": if_match}), 400, "invalid_data")
    assert client.get(url).json()["customer_group"]["name"] == "VIP"
    assert [e.type for e in all_events(gw)] == ["customer_group.created"]


def test_given_a_well_formed_but_stale_if_match_then_still_412(client):
    group = create_group(client, "VIP")
    url = f"/admin/customer-groups/{group['id']}"
    assert_error(
        client.post(url, json={"name": "Gold"}, headers={"If-Match": '"7"'}),
        412,
        "precondition_failed",
    )
