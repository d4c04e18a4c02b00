"""Lost database connections: stale ones are replaced, a read is retried once, a committed
change is answered as done, and what cannot be served is a 503 that says whether anything
was written (PostgreSQL, connections really terminated with ``pg_terminate_backend``)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, make_url, text

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from groupwire import Groupwire, hookimpl
from groupwire.api import create_app
from groupwire.auth import keys
from tests.api.conftest import all_events, assert_error, bearer
from tests.api.tcp_forwarder import TcpForwarder
from tests.api.test_customer_groups import create_customer, create_group

pytestmark = pytest.mark.postgres_only


class Backends:
    """The PostgreSQL backends behind ``engine``'s connections, and ways to kill them."""

    def __init__(self, engine: Engine, admin: Engine) -> None:
        self.admin = admin
        self.pids: set[int] = set()
        self.kill_next_statements = 0  # statements to fail by killing their own backend

        @event.listens_for(engine, "checkout")
        def _seen(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            self.pids.add(dbapi_connection.info.backend_pid)

        @event.listens_for(engine, "before_cursor_execute")
        def _kill_own(conn: Any, *_args: Any) -> None:
            if self.kill_next_statements > 0:
                self.kill_next_statements -= 1
                self.terminate([conn.connection.dbapi_connection.info.backend_pid])

    def terminate(self, pids: Any = None) -> None:
        """Terminate the backends (all seen so far by default) and wait until they are gone."""
        with self.admin.connect() as conn:
            for pid in sorted(self.pids if pids is None else pids):
                conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})


@pytest.fixture
def backends(gw: Groupwire, postgres_schemas: Any) -> Backends:
    return Backends(gw.engine, postgres_schemas.engine)


def events_of(gw: Groupwire, type: str) -> list[Any]:
    return [e for e in all_events(gw) if e.type == type]


def assert_unavailable(response: Any) -> dict[str, Any]:
    body = assert_error(response, 503, "unexpected_state")
    assert int(response.headers["Retry-After"]) > 0
    return body


# --- (a) stale connections in the pool ------------------------------------------------------


def test_given_the_pooled_connections_were_terminated_when_reading_and_writing_then_both_succeed(
    client, gw, backends
):
    group = create_group(client, "VIP")
    assert client.get(f"/admin/customer-groups/{group['id']}").status_code == 200

    backends.terminate()

    read = client.get(f"/admin/customer-groups/{group['id']}")
    assert read.status_code == 200, read.text
    written = client.post(f"/admin/customer-groups/{group['id']}", json={"name": "Gold"})
    assert written.status_code == 200, written.text
    assert gw.groups.get(group["id"]).name == "Gold"
    assert len(events_of(gw, "customer_group.updated")) == 1


def test_given_a_read_whose_connection_dies_mid_query_then_it_is_retried_once_and_served(
    client, gw, backends
):
    group = create_group(client, "VIP")

    backends.kill_next_statements = 1  # the API key lookup's statement dies, its retry works
    response = client.get(f"/admin/customer-groups/{group['id']}")

    assert response.status_code == 200, response.text
    assert response.json()["customer_group"]["name"] == "VIP"


# --- (b) a write whose connection dies before its commit ------------------------------------


class KillsItsOwnWrite:
    """A before-hook that terminates every connection, the writing one included."""

    def __init__(self, backends: Backends) -> None:
        self.backends = backends

    @hookimpl
    def before_add_customer_to_group(self, group: Any, customers: Any, context: Any) -> None:
        self.backends.terminate()


def test_given_the_connection_dies_during_a_write_then_503_retry_after_and_nothing_written(
    client, gw, backends, caplog
):
    group = create_group(client, "VIP")
    ada = create_customer(client, "ada@example.com")
    gw.register(KillsItsOwnWrite(backends))

    with caplog.at_level(logging.INFO):
        response = client.post(
            f"/admin/customer-groups/{group['id']}/customers", json={"add": [ada["id"]]}
        )

    body = assert_unavailable(response)
    assert "nothing was written" in body["message"]
    assert gw.groups.members(group["id"]) == []
    assert events_of(gw, "customer_group.customer_added") == []
    assert_logged_once_without_traceback(caplog)


def test_given_the_connection_dies_while_committing_then_503_says_the_outcome_is_unknown(
    client, gw, backends, caplog
):
    group = create_group(client, "VIP")
    ada = create_customer(client, "ada@example.com")

    def kill_on_commit(conn: Any) -> None:
        if conn.get_execution_options().get("groupwire_write"):
            backends.terminate([conn.connection.dbapi_connection.info.backend_pid])

    event.listen(gw.engine, "commit", kill_on_commit)
    try:
        with caplog.at_level(logging.INFO):
            response = client.post(
                f"/admin/customer-groups/{group['id']}/customers", json={"add": [ada["id"]]}
            )
    finally:
        event.remove(gw.engine, "commit", kill_on_commit)

    body = assert_unavailable(response)
    assert "Idempotency-Key" in body["message"]
    assert len(events_of(gw, "customer_group.customer_added")) <= 1
    assert_logged_once_without_traceback(caplog)


# --- (c) the connection dies after the commit, while the response is built ------------------


class KillsTheReadAfterCommit:
    """An after-hook arming the next ``statements`` statements to die on their connection."""

    def __init__(self, backends: Backends, statements: int) -> None:
        self.backends = backends
        self.statements = statements

    @hookimpl
    def after_add_customer_to_group(self, group: Any, customer_ids: Any, context: Any) -> None:
        self.backends.kill_next_statements = self.statements

    @hookimpl
    def after_update_customer_group(self, group: Any, changes: Any, context: Any) -> None:
        self.backends.kill_next_statements = self.statements

    @hookimpl
    def after_update_customer(self, customer: Any, changes: Any, context: Any) -> None:
        self.backends.kill_next_statements = self.statements


def test_given_the_read_after_a_committed_batch_dies_once_then_it_is_retried_and_200(
    client, gw, backends
):
    group = create_group(client, "VIP")
    ada = create_customer(client, "ada@example.com")
    gw.register(KillsTheReadAfterCommit(backends, statements=1))

    response = client.post(
        f"/admin/customer-groups/{group['id']}/customers",
        json={"add": [ada["id"]]},
        params={"fields": "*customers"},
    )

    assert response.status_code == 200, response.text
    assert [c["id"] for c in response.json()["customer_group"]["customers"]] == [ada["id"]]
    assert len(events_of(gw, "customer_group.customer_added")) == 1


def test_given_every_read_after_a_committed_batch_dies_then_the_answer_still_says_done(
    client, gw, backends
):
    group = create_group(client, "VIP")
    ada = create_customer(client, "ada@example.com")
    gw.register(KillsTheReadAfterCommit(backends, statements=1000))

    response = client.post(
        f"/admin/customer-groups/{group['id']}/customers", json={"add": [ada["id"]]}
    )
    backends.kill_next_statements = 0

    assert response.status_code == 200, response.text
    assert response.json()["customer_group"]["id"] == group["id"]
    assert [m.id for m in gw.groups.members(group["id"])] == [ada["id"]]
    assert len(events_of(gw, "customer_group.customer_added")) == 1


@pytest.mark.parametrize(
    ("path", "body", "relation"),
    [
        ("/admin/customer-groups/{group}", {"name": "Gold"}, "customers"),
        ("/admin/customer-groups/{group}/customers", {"add": ["{customer}"]}, "customers"),
        ("/admin/customers/{customer}", {"first_name": "Ada"}, "groups"),
        ("/admin/customers/{customer}/customer-groups", {"add": ["{group}"]}, "groups"),
    ],
)
def test_given_relations_that_cannot_be_read_after_a_commit_then_200_marks_them_left_out(
    client, gw, backends, path, body, relation
):
    group = create_group(client, "VIP")
    customer = create_customer(client, "ada@example.com")
    ids = {"group": group["id"], "customer": customer["id"]}
    gw.register(KillsTheReadAfterCommit(backends, statements=1000))
    before = len(all_events(gw))

    resolved = {
        k: [i.format(**ids) for i in v] if isinstance(v, list) else v for k, v in body.items()
    }
    response = client.post(path.format(**ids), json=resolved, params={"fields": f"+{relation}"})
    backends.kill_next_statements = 0

    assert response.status_code == 200, response.text
    entity = next(iter(response.json().values()))
    assert relation not in entity
    assert response.headers["Groupwire-Omitted"] == relation
    assert len(all_events(gw)) == before + 1


# --- (d) the database is down -----------------------------------------------------------------


@pytest.fixture
def database_behind_a_cut(database_url: str) -> Iterator[tuple[Groupwire, TcpForwarder]]:
    """A Groupwire whose PostgreSQL connections pass a forwarder the test can cut."""
    url = make_url(database_url)
    forwarder = TcpForwarder((url.host or "127.0.0.1", url.port or 5432))
    instance = Groupwire.open(
        url.set(port=forwarder.port).render_as_string(hide_password=False),
        load_entry_points=False,
        plugins=[],
    )
    yield instance, forwarder
    forwarder.cut()
    instance.close()


def test_given_the_database_is_down_then_reads_and_writes_are_503_logged_once(
    database_behind_a_cut, caplog
):
    gw, forwarder = database_behind_a_cut
    secret = keys.create_key(gw.engine, "admin", ["admin"])[1]
    with TestClient(create_app(gw), headers=bearer(secret)) as client:
        group = create_group(client, "VIP")
        forwarder.cut()
        for method, path in [
            ("GET", f"/admin/customer-groups/{group['id']}"),
            ("GET", "/admin/customer-groups"),
            ("POST", "/admin/customer-groups"),
            ("POST", f"/admin/customer-groups/{group['id']}"),
        ]:
            caplog.clear()
            with caplog.at_level(logging.INFO):
                response = client.request(method, path, json={"name": "Gold"})
            body = assert_unavailable(response)
            assert "nothing was written" in body["message"]
            assert_logged_once_without_traceback(caplog)


def assert_logged_once_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(problems) == 1, [r.getMessage() for r in problems]
    assert problems[0].exc_info is None and "\n" not in problems[0].getMessage()


# --- (e) answers that need no read after the commit -------------------------------------------


def test_given_every_statement_after_a_keyed_commit_dies_then_200_and_its_retry_replays_it(
    client, gw, backends
):
    group = create_group(client, "VIP")
    ada = create_customer(client, "ada@example.com")
    gw.register(KillsTheReadAfterCommit(backends, statements=1000))
    path = f"/admin/customer-groups/{group['id']}/customers"
    request = {
        "json": {"add": [ada["id"]]},
        "params": {"fields": "*customers"},
        "headers": {"Idempotency-Key": "add-ada"},
    }

    first = client.post(path, **request)
    backends.kill_next_statements = 0
    retry = client.post(path, **request)

    assert first.status_code == 200, first.text
    assert "Groupwire-Omitted" not in first.headers  # read in the change's own transaction
    assert [c["id"] for c in first.json()["customer_group"]["customers"]] == [ada["id"]]
    assert retry.status_code == 200, retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert (retry.content, retry.headers["ETag"]) == (first.content, first.headers["ETag"])
    assert len(events_of(gw, "customer_group.customer_added")) == 1


class KillsTheReadAfterAnAddressChange:
    """An after-hook of every address change arming the next statements to die."""

    def __init__(self, backends: Backends) -> None:
        self.backends = backends

    @hookimpl
    def after_create_customer_address(self, customer: Any, address: Any, context: Any) -> None:
        self.backends.kill_next_statements = 1000

    @hookimpl
    def after_update_customer_address(
        self, customer: Any, address: Any, changes: Any, context: Any
    ) -> None:
        self.backends.kill_next_statements = 1000

    @hookimpl
    def after_delete_customer_address(
        self, customer: Any, address: Any, reason: Any, context: Any
    ) -> None:
        self.backends.kill_next_statements = 1000


@pytest.mark.parametrize(
    ("method", "path", "event"),
    [
        ("POST", "", "customer.address_created"),
        ("POST", "/{address}", "customer.address_updated"),
        ("DELETE", "/{address}", "customer.address_deleted"),
    ],
    ids=["create", "update", "delete"],
)
@pytest.mark.parametrize("fields", [None, "*addresses"], ids=["customer", "with-addresses"])
def test_given_every_read_after_a_committed_address_change_dies_then_200_from_the_change(
    client, gw, backends, method, path, event, fields
):
    customer = create_customer(client, "ada@example.com")
    home = gw.customers.addresses.create(customer["id"], city="Paris")
    gw.register(KillsTheReadAfterAnAddressChange(backends))
    url = f"/admin/customers/{customer['id']}/addresses" + path.format(address=home.id)
    before = len(events_of(gw, event))

    response = client.request(
        method,
        url,
        json={"city": "Lyon"} if method == "POST" else None,
        params={"fields": fields} if fields else None,
    )
    backends.kill_next_statements = 0

    assert response.status_code == 200, response.text
    body = response.json()
    answered = body["parent"] if method == "DELETE" else body["customer"]
    assert answered["id"] == customer["id"]
    assert answered["email"] == "ada@example.com"
    if fields:
        assert "addresses" not in answered
        assert response.headers["Groupwire-Omitted"] == "addresses"
    if method == "POST":
        assert response.headers["ETag"] == customer_etag(client, customer["id"])
    assert len(events_of(gw, event)) == before + 1


def customer_etag(client: TestClient, customer_id: str) -> str:
    return str(client.get(f"/admin/customers/{customer_id}").headers["ETag"])
