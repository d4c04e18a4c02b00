"""Size limits: the request body (413, never read past the limit) and each field (400)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from groupwire import Groupwire, InvalidData
from groupwire.api import create_app
from groupwire.domain.limits import DESCRIPTION_MAX, METADATA_MAX_BYTES
from tests.api.conftest import TestClient, all_events, assert_error, bearer
from tests.api.test_customer_groups import create_group

MIB = 1024 * 1024


def chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body sent without Content-Length (chunked transfer encoding)."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def big_group(megabytes: int) -> bytes:
    return json.dumps({"name": "Big", "description": "x" * (megabytes * MIB)}).encode()


def test_given_a_body_over_the_default_limit_with_content_length_then_413_and_nothing_stored(
    client, gw
):
    response = client.post(
        "/admin/customer-groups",
        content=big_group(10),
        headers={"Content-Type": "application/json"},
    )
    body = assert_error(response, 413, "invalid_data")
    assert "8,388,608 bytes" in body["message"]
    assert gw.groups.list().count == 0 and all_events(gw) == []


def test_given_a_chunked_body_over_the_limit_then_413_while_it_streams(client, gw):
    sent = big_group(10)
    response = client.post(
        "/admin/customer-groups",
        content=chunks(sent),
        headers={"Content-Type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "invalid_data")
    assert gw.groups.list().count == 0 and all_events(gw) == []


def test_given_a_configured_limit_then_a_body_just_over_it_is_413_and_one_under_it_passes(
    gw, admin_secret
):
    gw.settings.api_max_body_bytes = 2048
    with TestClient(create_app(gw), headers=bearer(admin_secret)) as small:
        over = {"name": "Over", "description": "x" * 2048}
        assert_error(small.post("/admin/customer-groups", json=over), 413, "invalid_data")
        assert_error(
            small.post(
                "/admin/customer-groups",
                content=chunks(json.dumps(over).encode(), 100),
                headers={"Content-Type": "application/json"},
            ),
            413,
            "invalid_data",
        )
        under = {"name": "Under", "description": "x" * 1900}
        assert small.post("/admin/customer-groups", json=under).status_code == 200


def test_given_a_batch_of_100000_ids_then_the_default_limit_lets_it_through(client):
    group = create_group(client, "VIP")
    ids = [f"cus_01J{n:027d}" for n in range(100_000)]
    response = client.post(f"/admin/customer-groups/{group['id']}/customers", json={"add": ids})
    assert response.status_code == 404  # read whole and validated: the ids are unknown
    assert "and 99,995 more, but such entity does not exist" in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "G", "description": "x" * (DESCRIPTION_MAX + 1)}, "description"),
        ({"name": "G", "metadata": {"k": "x" * METADATA_MAX_BYTES}}, "metadata"),
        ({"name": "G", "metadata": {"k" * 256: 1}}, "metadata"),
        ({"name": "x" * 256}, "name"),
    ],
)
def test_given_a_field_over_its_limit_when_creating_a_group_then_400_naming_it(
    client, gw, body, field
):
    message = assert_error(client.post("/admin/customer-groups", json=body), 400, "invalid_data")[
        "message"
    ]
    assert field in message and len(message) < 300
    assert all_events(gw) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "a@b.co", "phone": "1" * 65}, "phone"),
        ({"email": "a@b.co", "first_name": "x" * 256}, "first_name"),
        ({"email": "a@b.co", "metadata": {"k": "x" * METADATA_MAX_BYTES}}, "metadata"),
        ({"email": "x" * 400 + "@b.co"}, "email"),
    ],
)
def test_given_a_field_over_its_limit_when_creating_a_customer_then_400_naming_it(
    client, gw, body, field
):
    message = assert_error(client.post("/admin/customers", json=body), 400, "invalid_data")[
        "message"
    ]
    assert field in message and len(message) < 300
    assert all_events(gw) == []


def test_given_the_library_called_directly_then_the_service_enforces_the_same_limits(
    gw: Groupwire,
):
    with pytest.raises(InvalidData, match="description must be at most 10,000 characters"):
        gw.groups.create("G", description="x" * (DESCRIPTION_MAX + 1))
    with pytest.raises(InvalidData, match="metadata must be at most 65,536 bytes"):
        gw.customers.create("a@b.co", metadata={"k": "x" * METADATA_MAX_BYTES})
    with pytest.raises(InvalidData, match="email must be a valid email address") as refused:
        gw.customers.create("not an email " * 100_000)
    assert len(refused.value.message) < 200
    assert all_events(gw) == []


def test_given_metadata_merged_past_the_limit_then_400_and_the_group_is_unchanged(client, gw):
    group = create_group(client, "VIP", metadata={"a": "x" * 40_000})
    url = f"/admin/customer-groups/{group['id']}"
    response = client.post(url, json={"metadata": {"b": "y" * 40_000}})
    assert "65,536 bytes" in assert_error(response, 400, "invalid_data")["message"]
    assert set(client.get(url).json()["customer_group"]["metadata"]) == {"a"}
    assert [e.type for e in all_events(gw)] == ["customer_group.created"]
