"""``Idempotency-Key`` on the Admin API: a retried write changes state once, emits each event
once, and gets the first answer back; misuse of a key is refused."""

from __future__ import annotations

import importlib
import pkgutil
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import select, update
from starlette.types import Message, Receive, Scope, Send

import groupwire.api
from groupwire import Context, Groupwire, hookimpl
from groupwire.api import idempotency
from groupwire.api.caller import change_context
from groupwire.api.idempotency import outside_service
from groupwire.store import tables
from groupwire.store.unit_of_work import UnitOfWork
from tests.api.conftest import all_events, assert_error, bearer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

GROUPS = "/admin/customer-groups"


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


def types(gw: Groupwire) -> list[str]:
    return [event.type for event in all_events(gw)]


def key_rows(gw: Groupwire) -> list[Any]:
    with gw.engine.connect() as conn:
        return list(conn.execute(select(tables.idempotency_key)))


def test_a_create_retried_with_the_same_key_and_body_changes_state_once_and_replays_the_answer(
    client, gw
):
    first = client.post(GROUPS, json={"name": "VIP"}, headers=keyed("create-vip-1"))
    retry = client.post(GROUPS, json={"name": "VIP"}, headers=keyed("create-vip-1"))

    assert first.status_code == 200, first.text
    assert retry.status_code == 200, retry.text
    assert retry.json() == first.json()
    assert retry.headers["etag"] == first.headers["etag"]
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert [g.id for g in gw.groups.list().items] == [first.json()["customer_group"]["id"]]
    assert types(gw) == ["customer_group.created"]


def test_a_json_body_with_other_spacing_and_key_order_is_the_same_request(client, gw):
    first = client.post(
        GROUPS,
        content=b'{"name": "VIP", "description": "best"}',
        headers={**keyed("k"), "content-type": "application/json"},
    )
    retry = client.post(
        GROUPS,
        content=b'{"description":"best","name":"VIP"}',
        headers={**keyed("k"), "content-type": "application/json"},
    )

    assert retry.status_code == 200 and retry.json() == first.json()
    assert types(gw) == ["customer_group.created"]


def test_the_same_key_with_another_body_is_refused_with_422_and_changes_nothing(client, gw):
    client.post(GROUPS, json={"name": "VIP"}, headers=keyed("k"))

    other = client.post(GROUPS, json={"name": "Trial"}, headers=keyed("k"))
    other_path = client.post(f"{GROUPS}/cusgroup_x", json={"name": "VIP"}, headers=keyed("k"))

    body = assert_error(other, 422, "not_allowed")
    assert "Idempotency-Key" in body["message"]
    assert_error(other_path, 422, "not_allowed")
    assert [g.name for g in gw.groups.list().items] == ["VIP"]
    assert types(gw) == ["customer_group.created"]


def test_the_same_key_under_two_api_keys_does_not_collide(make_client, gw):
    one, _, _ = make_client(["write"])
    two, _, _ = make_client(["write"])

    first = one.post(GROUPS, json={"name": "VIP"}, headers=keyed("one-key-for-both"))
    second = two.post(GROUPS, json={"name": "Trial"}, headers=keyed("one-key-for-both"))

    assert first.status_code == 200 and second.status_code == 200, second.text
    assert sorted(g.name for g in gw.groups.list().items) == ["Trial", "VIP"]


def test_an_expired_key_is_ignored_and_the_request_executes_again(client, gw):
    group = gw.groups.create("VIP")
    ada = gw.customers.create("ada@shop.test")
    members = f"{GROUPS}/{group.id}/customers"
    client.post(members, json={"add": [ada.id]}, headers=keyed("add-ada"))
    gw.groups.remove_customers(group.id, [ada.id])
    with gw.engine.begin() as conn:
        conn.execute(
            update(tables.idempotency_key).values(
                expires_at=datetime.now(UTC) - timedelta(seconds=1)
            )
        )

    again = client.post(members, json={"add": [ada.id]}, headers=keyed("add-ada"))

    assert again.status_code == 200 and "idempotent-replayed" not in again.headers
    assert [c.id for c in gw.groups.members(group.id)] == [ada.id]
    assert types(gw).count("customer_group.customer_added") == 2


def test_a_failed_request_stores_nothing_and_its_retry_executes(client, gw):
    group = gw.groups.create("VIP")
    members = f"{GROUPS}/{group.id}/customers"

    missing = client.post(members, json={"add": ["cus_LATER"]}, headers=keyed("k"))
    assert_error(missing, 404, "not_found")
    assert key_rows(gw) == []
    ada = gw.customers.create("ada@shop.test")
    fixed = client.post(members, json={"add": [ada.id]}, headers=keyed("k"))

    assert fixed.status_code == 200, fixed.text
    assert [c.id for c in gw.groups.members(group.id)] == [ada.id]


def test_a_no_op_write_stores_its_answer_and_the_retry_replays_it(client, gw):
    group = gw.groups.create("VIP")
    same = client.post(f"{GROUPS}/{group.id}", json={"name": "VIP"}, headers=keyed("k"))
    gw.groups.update(group.id, name="Gold")

    retry = client.post(f"{GROUPS}/{group.id}", json={"name": "VIP"}, headers=keyed("k"))

    assert retry.status_code == 200 and retry.json() == same.json()
    assert retry.json()["customer_group"]["name"] == "VIP"  # the first answer, as it was
    assert gw.groups.get(group.id).name == "Gold"  # and nothing changed again
    assert types(gw) == ["customer_group.created", "customer_group.updated"]


def test_a_write_outside_the_service_is_replayed_too(client, gw):
    body = {"name": "ci", "scopes": ["read"]}
    first = client.post("/admin/api-keys", json=body, headers=keyed("k"))
    retry = client.post("/admin/api-keys", json=body, headers=keyed("k"))

    assert first.status_code == 200 and retry.json() == first.json()
    listed = client.get("/admin/api-keys").json()["api_keys"]
    assert [k["name"] for k in listed].count("ci") == 1


@pytest.mark.parametrize(
    "key", ["", "x" * 256, "caf\u00e9", "tab\there"], ids=["empty", "256", "non-ascii", "tab"]
)
def test_a_malformed_key_is_refused_with_400_and_changes_nothing(client, gw, key):
    response = client.post(
        GROUPS, json={"name": "VIP"}, headers={"Idempotency-Key": key.encode("utf-8")}
    )

    assert_error(response, 400, "invalid_data")
    assert gw.groups.list().count == 0


def test_a_malformed_key_on_a_method_no_route_serves_is_still_a_405(client, gw):
    response = client.patch(GROUPS, json={"name": "VIP"}, headers={"Idempotency-Key": ""})

    assert_error(response, 405, "not_allowed")
    assert response.headers["allow"] == "GET, POST"
    assert gw.groups.list().count == 0


def test_a_used_key_on_a_method_no_route_serves_is_still_a_405(client, gw):
    client.post(GROUPS, json={"name": "VIP"}, headers=keyed("used-1"))

    response = client.request("TRACE", GROUPS, json={"name": "VIP"}, headers=keyed("used-1"))

    assert_error(response, 405, "not_allowed")
    assert gw.groups.list().count == 1


def test_the_longest_key_is_accepted(client, gw):
    response = client.post(GROUPS, json={"name": "VIP"}, headers=keyed("k" * 255))

    assert response.status_code == 200, response.text


def test_the_header_is_ignored_on_reads(client, gw):
    gw.groups.create("VIP")

    listed = client.get(GROUPS, headers=keyed("\x01 not even valid"))

    assert listed.status_code == 200 and listed.json()["count"] == 1
    assert key_rows(gw) == []


class SlowCreation:
    """Holds the first group creation open inside its transaction for a moment, so that a
    duplicate request arrives while the first has claimed its key but not committed."""

    def __init__(self) -> None:
        self.inside = threading.Event()

    @hookimpl
    def before_create_customer_group(self, draft: Any, context: Any) -> None:
        if not self.inside.is_set():
            self.inside.set()
            time.sleep(0.5)


def test_concurrent_duplicates_change_state_once_and_both_get_the_first_answer(
    app: FastAPI, admin_secret: str, gw
):
    slow = SlowCreation()
    gw.register(slow)
    answers: dict[str, Any] = {}

    def post(name: str) -> None:
        with TestClient(app, headers=bearer(admin_secret)) as client:
            answers[name] = client.post(GROUPS, json={"name": "VIP"}, headers=keyed("race"))

    first = threading.Thread(target=post, args=("first",))
    first.start()
    assert slow.inside.wait(10)
    second = threading.Thread(target=post, args=("second",))
    second.start()
    first.join(30)
    second.join(30)

    assert answers["first"].status_code == 200, answers["first"].text
    assert answers["second"].status_code == 200, answers["second"].text
    assert answers["second"].json() == answers["first"].json()
    assert gw.groups.list().count == 1
    assert types(gw) == ["customer_group.created"]


class ResetAfterServing:
    """An ASGI wrapper whose first keyed request is fully served, then lost: the client sees
    its connection reset (after the server committed), as with a timeout or a dropped link."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.dropped = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", []))
        if scope["type"] != "http" or b"idempotency-key" not in headers or self.dropped:
            await self.app(scope, receive, send)
            return
        self.dropped += 1

        async def lost(message: Message) -> None:
            return None

        await self.app(scope, receive, lost)
        raise ConnectionResetError("connection reset by peer")


def test_a_retry_after_a_connection_reset_at_commit_changes_state_once_and_emits_once(
    app: FastAPI, admin_secret: str, gw
):
    group = gw.groups.create("VIP")
    ids = [gw.customers.create(f"c{i}@shop.test").id for i in range(3)]
    flaky = ResetAfterServing(app)
    members = f"{GROUPS}/{group.id}/customers"

    with TestClient(flaky, headers=bearer(admin_secret)) as client:  # type: ignore[arg-type]
        with pytest.raises(ConnectionResetError):
            client.post(members, json={"add": ids}, headers=keyed("batch-1"))
        retry = client.post(members, json={"add": ids}, headers=keyed("batch-1"))

    assert flaky.dropped == 1
    assert retry.status_code == 200, retry.text
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["customer_group"]["id"] == group.id
    assert sorted(c.id for c in gw.groups.members(group.id)) == sorted(ids)
    added = [e for e in all_events(gw) if e.type == "customer_group.customer_added"]
    assert sorted(e.data["customer_id"] for e in added) == sorted(ids)


def test_a_retry_arriving_right_after_the_commit_gets_the_stored_answer(
    app: FastAPI, admin_secret: str, gw
):
    retried: dict[str, Any] = {}

    def retry_now(_events: Any) -> None:
        """Runs right after the first request's commit, before it answers."""
        if retried:
            return
        retried["started"] = True

        def post() -> None:
            with TestClient(app, headers=bearer(admin_secret)) as client:
                retried["response"] = client.post(GROUPS, json={"name": "VIP"}, headers=keyed("k"))

        retried["thread"] = threading.Thread(target=post)
        retried["thread"].start()
        retried["thread"].join(30)  # the retry is answered before the first request is

    gw.service.commit_listeners.append(retry_now)
    with TestClient(app, headers=bearer(admin_secret)) as client:
        first = client.post(GROUPS, json={"name": "VIP"}, headers=keyed("k"))

    assert first.status_code == 200
    assert retried["response"].status_code == 200, retried["response"].text
    assert retried["response"].headers["idempotent-replayed"] == "true"
    assert retried["response"].content == first.content
    assert types(gw) == ["customer_group.created"]


def test_the_answer_is_stored_in_the_transaction_of_the_change(app: FastAPI, admin_secret: str, gw):
    seen: list[Any] = []

    def read_the_key(_events: Any) -> None:
        """Runs right after the commit, on a connection of its own."""
        seen.extend(key_rows(gw))

    gw.service.commit_listeners.append(read_the_key)
    with TestClient(app, headers=bearer(admin_secret)) as client:
        first = client.post(GROUPS, json={"name": "VIP"}, headers=keyed("k"))

    assert first.status_code == 200, first.text
    [row] = seen
    assert row.status == 200
    assert row.body.encode("utf-8") == first.content
    assert "idempotent-replayed" not in first.headers


class ServerCrashed(BaseException):
    """The process dying: no handler of the application catches it."""


def crash_once_after_the_commit(gw: Groupwire) -> list[int]:
    """The next commit is followed by a crash of the request (as by a kill of the server
    between its commit and its answer); returns a list counting the crashes."""
    crashes: list[int] = []

    def crash(_events: Any) -> None:
        if not crashes:
            crashes.append(1)
            raise ServerCrashed

    gw.service.commit_listeners.insert(0, crash)
    return crashes


def test_a_crash_right_after_the_commit_keeps_the_answer_and_the_retry_replays_it(
    app: FastAPI, admin_secret: str, gw
):
    group = gw.groups.create("VIP")
    ids = [gw.customers.create(f"c{i}@shop.test").id for i in range(3)]
    members = f"{GROUPS}/{group.id}/customers"
    crashes = crash_once_after_the_commit(gw)
    crashing = TestClient(app, headers=bearer(admin_secret))  # its event loop dies with it
    with pytest.raises(ServerCrashed):
        crashing.post(
            members, json={"add": ids}, params={"fields": "*customers"}, headers=keyed("batch-1")
        )

    with TestClient(app, headers=bearer(admin_secret)) as client:
        retry = client.post(
            members, json={"add": ids}, params={"fields": "*customers"}, headers=keyed("batch-1")
        )
        again = client.post(
            members, json={"add": ids}, params={"fields": "*customers"}, headers=keyed("batch-1")
        )

    assert crashes == [1]
    assert retry.status_code == 200, retry.text
    assert retry.headers["idempotent-replayed"] == "true"
    body = retry.json()["customer_group"]
    assert body["id"] == group.id
    assert sorted(c["id"] for c in body["customers"]) == sorted(ids)
    assert (again.status_code, again.content, again.headers["etag"]) == (
        retry.status_code,
        retry.content,
        retry.headers["etag"],
    )
    assert sorted(c.id for c in gw.groups.members(group.id)) == sorted(ids)
    added = [e for e in all_events(gw) if e.type == "customer_group.customer_added"]
    assert sorted(e.data["customer_id"] for e in added) == sorted(ids)


def test_a_replay_is_byte_identical_to_the_first_answer(client, gw):
    group = gw.groups.create("VIP")
    ada = gw.customers.create("ada@shop.test")
    path = f"{GROUPS}/{group.id}/customers"
    body = {"add": [ada.id]}

    first = client.post(path, json=body, params={"fields": "*customers"}, headers=keyed("k"))
    gw.customers.update(ada.id, first_name="Ada")  # changes what a fresh read would show
    retry = client.post(path, json=body, params={"fields": "*customers"}, headers=keyed("k"))

    assert first.status_code == retry.status_code == 200
    assert retry.content == first.content
    assert retry.headers["etag"] == first.headers["etag"]
    assert retry.headers["content-type"] == first.headers["content-type"]
    assert first.json()["customer_group"]["customers"][0]["first_name"] is None


def test_a_key_claimed_by_a_change_that_stored_no_answer_is_a_409_saying_it_was_applied(
    client, gw, admin_key_id
):
    fingerprint = idempotency.request_fingerprint(
        {"method": "POST", "path": GROUPS, "query_string": b""}, b'{"name":"VIP"}'
    )
    context = Context(actor=admin_key_id, idempotency_key="k", request_fingerprint=fingerprint)
    with UnitOfWork(gw.engine, source="test", context=context) as uow:
        uow.commit()  # a change under the key (the library's calls store no answer)

    response = client.post(GROUPS, json={"name": "VIP"}, headers=keyed("k"))

    body = assert_error(response, 409, "conflict")
    assert "already applied" in body["message"]
    assert gw.groups.list().count == 0


def test_every_admin_write_route_takes_the_key_in_the_service_or_outside_it():
    modules = [
        importlib.import_module(f"groupwire.api.{info.name}")
        for info in pkgutil.iter_modules(groupwire.api.__path__)
    ]
    routes = [
        route
        for module in modules
        for route in getattr(getattr(module, "router", None), "routes", ())
        if isinstance(route, APIRoute)
        and route.path.startswith("/admin")
        and route.methods - {"GET", "HEAD"}
    ]
    takes = {
        (method, route.path): [
            name
            for name, call in (("service", change_context), ("outside", outside_service))
            if depends_on(route.dependant, call)
        ]
        for route in routes
        for method in route.methods
    }

    assert len(takes) > 20
    assert {route: found for route, found in takes.items() if len(found) != 1} == {}


def depends_on(dependant: Any, call: Any) -> bool:
    return any(sub.call is call or depends_on(sub, call) for sub in dependant.dependencies)


@pytest.fixture
def admin_key_id(client, gw) -> Iterator[str]:
    yield client.get("/admin/api-keys").json()["api_keys"][0]["id"]
