"""API keys: every /admin route needs one, scopes limit it, events record who and which request."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import select

from groupwire import NotFound
from groupwire.auth import keys
from groupwire.auth.tables import api_key
from groupwire.store.engine import create_store_engine
from tests.api.conftest import all_events, assert_error, bearer
from tests.api.test_customer_groups import create_group

ADMIN_ROUTES = [
    ("GET", "/admin/customer-groups"),
    ("POST", "/admin/customer-groups"),
    ("GET", "/admin/customer-groups/cusgroup_x"),
    ("POST", "/admin/customer-groups/cusgroup_x"),
    ("DELETE", "/admin/customer-groups/cusgroup_x"),
    ("POST", "/admin/customer-groups/cusgroup_x/customers"),
    ("GET", "/admin/customer-groups/cusgroup_x/events"),
    ("GET", "/admin/customers"),
    ("POST", "/admin/customers"),
    ("GET", "/admin/customers/cus_x"),
    ("POST", "/admin/customers/cus_x"),
    ("DELETE", "/admin/customers/cus_x"),
    ("POST", "/admin/customers/cus_x/customer-groups"),
    ("GET", "/admin/events"),
    ("GET", "/admin/events/stream"),
    ("GET", "/admin/api-keys"),
    ("POST", "/admin/api-keys"),
    ("POST", "/admin/api-keys/apikey_x/revoke"),
    ("GET", "/admin/not-a-route"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_given_no_credentials_when_calling_any_admin_route_then_401(anonymous, method, path):
    response = anonymous.request(method, path, json={"name": "x"})
    body = assert_error(response, 401, "unauthorized")
    assert body["message"] == "Unauthorized"


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer gw_sk_wrong",
        "Bearer ",
        "Token abc",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"gw_sk_wrong:").decode(),
    ],
)
def test_given_bad_credentials_then_401(anonymous, authorization):
    response = anonymous.get("/admin/customer-groups", headers={"Authorization": authorization})
    assert_error(response, 401, "unauthorized")


def test_given_a_key_as_basic_user_name_with_empty_password_then_it_authenticates(
    anonymous, admin_secret
):
    token = base64.b64encode(f"{admin_secret}:".encode()).decode()
    response = anonymous.get("/admin/customer-groups", headers={"Authorization": f"Basic {token}"})
    assert response.status_code == 200
    with_password = base64.b64encode(f"{admin_secret}:pw".encode()).decode()
    response = anonymous.get(
        "/admin/customer-groups", headers={"Authorization": f"Basic {with_password}"}
    )
    assert_error(response, 401, "unauthorized")


def test_given_a_read_key_then_it_reads_but_may_not_write_or_manage_keys(make_client, gw):
    reader, _, _ = make_client(["read"])

    assert reader.get("/admin/customer-groups").status_code == 200
    assert reader.get("/admin/events").status_code == 200
    assert_error(reader.post("/admin/customer-groups", json={"name": "x"}), 403, "forbidden")
    assert_error(reader.delete("/admin/customers/cus_x"), 403, "forbidden")
    assert_error(reader.get("/admin/api-keys"), 403, "forbidden")
    assert all_events(gw) == []


def test_given_a_write_key_then_it_reads_and_writes_but_may_not_manage_keys(make_client):
    writer, _, _ = make_client(["write"])

    assert writer.post("/admin/customer-groups", json={"name": "x"}).status_code == 200
    assert writer.get("/admin/customer-groups").json()["count"] == 1
    assert_error(
        writer.post("/admin/api-keys", json={"name": "k", "scopes": ["read"]}), 403, "forbidden"
    )


def test_given_an_admin_when_managing_keys_then_the_secret_is_shown_once_and_revocation_bites(
    client, anonymous, gw
):
    created = client.post("/admin/api-keys", json={"name": "ci", "scopes": ["read", "write"]})
    assert created.status_code == 200, created.text
    secret = created.json()["secret"]
    key = created.json()["api_key"]
    assert secret.startswith("gw_sk_") and len(secret) > 40
    assert key["id"].startswith("apikey_") and key["scopes"] == ["read", "write"]
    assert key["revoked_at"] is None

    listed = client.get("/admin/api-keys").json()
    assert listed["count"] == 2
    assert secret not in str(listed)
    assert anonymous.get("/admin/customer-groups", headers=bearer(secret)).status_code == 200

    revoked = client.post(f"/admin/api-keys/{key['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["api_key"]["revoked_at"] is not None
    response = anonymous.get("/admin/customer-groups", headers=bearer(secret))
    assert_error(response, 401, "unauthorized")
    assert_error(client.post("/admin/api-keys/apikey_nope/revoke"), 404, "not_found")
    assert_error(
        client.post("/admin/api-keys", json={"name": "bad", "scopes": ["root"]}),
        400,
        "invalid_data",
    )
    assert_error(
        client.post("/admin/api-keys", json={"name": "bad", "scopes": []}), 400, "invalid_data"
    )


def test_given_a_change_then_its_events_carry_the_key_id_and_the_request_id(make_client, gw):
    writer, key, _ = make_client(["write"])

    response = writer.post(
        "/admin/customer-groups", json={"name": "VIP"}, headers={"x-request-id": "req-abc-123"}
    )

    assert response.headers["x-request-id"] == "req-abc-123"
    [event] = all_events(gw)
    assert (event.actor, event.correlation_id) == (key.id, "req-abc-123")
    assert response.json()["customer_group"]["created_by"] == key.id


def test_given_no_request_id_then_one_is_generated_echoed_and_recorded(client, gw):
    response = client.post("/admin/customer-groups", json={"name": "VIP"})
    generated = response.headers["x-request-id"]
    assert generated.startswith("req_")
    assert all_events(gw)[0].correlation_id == generated

    unusable = client.post(
        "/admin/customer-groups", json={"name": "Gold"}, headers={"x-request-id": "x" * 500}
    )
    assert unusable.headers["x-request-id"] != "x" * 500
    assert all_events(gw)[1].correlation_id == unusable.headers["x-request-id"]


def test_given_an_error_then_it_still_carries_the_request_id(anonymous):
    response = anonymous.get("/admin/customer-groups", headers={"x-request-id": "r-1"})
    assert response.status_code == 401 and response.headers["x-request-id"] == "r-1"


def test_given_keys_in_the_store_then_only_hashes_are_kept(gw):
    key, secret = keys.create_key(gw.engine, "ci", ["read"])

    with gw.engine.connect() as conn:
        row = conn.execute(select(api_key)).mappings().one()
    assert secret not in str(dict(row))
    assert row["secret_hash"] == keys.hash_secret(secret) and len(row["secret_hash"]) == 64
    assert keys.authenticate(gw.engine, secret).id == key.id
    assert keys.authenticate(gw.engine, secret + "x") is None
    assert keys.authenticate(gw.engine, "not-a-key") is None
    assert keys.list_keys(gw.engine)[0].last_used_at is not None
    assert keys.revoke_key(gw.engine, key.id).revoked_at is not None
    assert keys.authenticate(gw.engine, secret) is None
    with pytest.raises(NotFound):
        keys.revoke_key(gw.engine, "apikey_nope")


def test_given_many_requests_then_last_used_is_refreshed_without_a_write_per_request(client, gw):
    for _ in range(3):
        client.get("/admin/customer-groups")
    [admin] = keys.list_keys(gw.engine)
    first_use = admin.last_used_at
    client.get("/admin/customer-groups")
    assert keys.list_keys(gw.engine)[0].last_used_at == first_use


def test_given_a_group_then_created_by_is_the_key(client, gw):
    group = create_group(client, "VIP")
    [admin] = keys.list_keys(gw.engine)
    assert group["created_by"] == admin.id


def test_given_a_verified_key_when_revoked_in_this_process_then_its_next_request_is_refused(
    make_client, gw
):
    reader, key, _ = make_client(["read"])
    assert reader.get("/admin/customer-groups").status_code == 200  # verified, remembered

    keys.revoke_key(gw.engine, key.id)  # not through the API: any revocation with this engine

    assert_error(reader.get("/admin/customer-groups"), 401, "unauthorized")


def test_given_a_key_revoked_by_another_process_then_a_remembering_server_refuses_it_later(
    gw,
):
    # given a cache of this engine and a key it verified
    cache = keys.VerifiedKeys(gw.engine, 60)
    key, secret = keys.create_key(gw.engine, "remembered", ["read"])
    generation = cache.generation
    cache.remember(secret, keys.authenticate(gw.engine, secret), generation)
    assert cache.lookup(secret).id == key.id
    # when another process revokes it (its own engine: no cache of ours hears of it)
    other = create_store_engine(str(gw.engine.url.render_as_string(hide_password=False)))
    try:
        keys.revoke_key(other, key.id)
    finally:
        other.dispose()
    # then it is still trusted until it expires, and forgotten once revoked here too
    assert cache.lookup(secret) is not None
    keys.revoke_key(gw.engine, key.id)  # already revoked: changes nothing but the caches
    assert cache.lookup(secret) is None


def test_given_a_revocation_during_a_verification_then_the_key_is_not_remembered(gw):
    cache = keys.VerifiedKeys(gw.engine, 60)
    key, secret = keys.create_key(gw.engine, "raced", ["read"])
    generation = cache.generation  # a request starts looking the key up
    verified = keys.authenticate(gw.engine, secret)

    keys.revoke_key(gw.engine, key.id)  # the revocation lands before the request remembers
    cache.remember(secret, verified, generation)

    assert cache.lookup(secret) is None
    assert keys.authenticate(gw.engine, secret) is None


def test_given_no_cache_time_then_nothing_is_remembered(gw):
    cache = keys.VerifiedKeys(gw.engine, 0)
    _, secret = keys.create_key(gw.engine, "uncached", ["read"])
    cache.remember(secret, keys.authenticate(gw.engine, secret), cache.generation)
    assert cache.lookup(secret) is None
