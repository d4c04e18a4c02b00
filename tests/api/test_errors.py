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


def test_given_malformed_json_then_400_invalid_data(client):
    response = client.post(
        "/admin/customer-groups",
        content=b'{"name": ',
        headers={"Content-Type": "application/json"},
    )
    assert "not valid JSON" in assert_error(response, 400, "invalid_data")["message"]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "many"},
        {"limit": -1},
        {"limit": 100000},
        {"offset": -5},
        {"order": "secret"},
        {"order": "--name"},
        {"fields": "password"},
        {"unknown": "1"},
        {"created_at[$gt]": "yesterday"},
        {"created_at[$gt]": "9999-12-31T23:59:59-10:00"},
        {"created_at[$between]": "2020-01-01T00:00:00Z"},
        {"q": "nul\x00"},
    ],
)
def test_given_an_invalid_query_when_listing_then_400_invalid_data(client, params):
    assert_error(client.get("/admin/customer-groups", params=params), 400, "invalid_data")


def test_given_a_taken_name_when_creating_or_renaming_then_422_duplicate_with_code(client):
    create_group(client, "VIP")
    other = create_group(client, "Gold")

    body = assert_error(
        client.post("/admin/customer-groups", json={"name": "VIP"}), 422, "duplicate_error"
    )
    assert body == {
        "type": "duplicate_error",
        "message": "Customer group with name: VIP, already exists.",
        "code": "invalid_request_error",
    }
    assert_error(
        client.post(f"/admin/customer-groups/{other['id']}", json={"name": "VIP"}),
        422,
        "duplicate_error",
    )


class NoTestGroups:
    @hookimpl
    def before_create_customer_group(self, draft, context):
        if draft.name.startswith("test"):
            raise HookRejected("test groups are not allowed here")


def test_given_a_vetoing_hook_when_creating_then_422_not_allowed_with_the_reason(client, gw):
    gw.register(NoTestGroups())

    response = client.post("/admin/customer-groups", json={"name": "test group"})

    body = assert_error(response, 422, "not_allowed")
    assert body["message"] == "test groups are not allowed here"
    assert all_events(gw) == []
    assert client.post("/admin/customer-groups", json={"name": "real"}).status_code == 200


def test_given_an_unknown_route_or_method_then_404_or_405_in_the_same_shape(client):
    assert_error(client.get("/admin/nowhere"), 404, "not_found")
    assert_error(client.get("/nowhere"), 404, "not_found")
    response = client.put("/admin/customer-groups")
    assert_error(response, 405, "not_allowed")
    assert "allow" in response.headers
