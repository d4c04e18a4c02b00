"""Medusa's JS SDK 2.21.2, unmodified, works against a served Groupwire (SQLite and PostgreSQL).

One scenario (``project/run-sdk.mjs``) calls every method of ``sdk.admin.customer`` and
``sdk.admin.customerGroup`` with ``fields`` and query parameters as a Medusa admin writes
them, authenticated as the SDK does with a secret key (Basic ``<key>:``); the test reads its
report. ``tests/medusa/test_js_sdk_parity.py`` runs the same scenario against a real Medusa
and compares both reports.

Needs Node.js 20+ with npm: without them the test fails, never skips (marker ``node``:
deselect locally with ``-m "not node"``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import BACKENDS, PostgresSchemas
from tests.sdk.js_sdk import Report, require_node, run_sdk, served_groupwire, steps_by_name

pytestmark = pytest.mark.node

CUSTOMER_METHODS = {
    "create",
    "update",
    "list",
    "retrieve",
    "delete",
    "batchCustomerGroups",
    "createAddress",
    "updateAddress",
    "deleteAddress",
    "retrieveAddress",
    "listAddresses",
}
GROUP_METHODS = {"create", "update", "list", "retrieve", "delete", "batchCustomers"}


@pytest.fixture(scope="module", params=BACKENDS)
def report(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Report]:
    """The SDK scenario's report, run once per backend against ``groupwire serve`` on a fresh
    database; the tests below each read a part of it."""
    require_node()  # before starting anything: no Node.js is a failure, never a skip
    workdir = tmp_path_factory.mktemp(f"js-sdk-{request.param}")
    if request.param == "sqlite":
        with served_groupwire(f"sqlite:///{workdir / 'groupwire.db'}", workdir) as server:
            yield run_sdk(workdir, server.base_url, server.api_key, uuid.uuid4().hex[:8])
        return
    schemas: PostgresSchemas = request.getfixturevalue("postgres_schemas")
    with schemas.fresh() as url, served_groupwire(url, workdir) as server:
        yield run_sdk(workdir, server.base_url, server.api_key, uuid.uuid4().hex[:8])


def ids_of(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


def test_given_the_js_sdk_when_every_customer_and_group_method_is_called_then_each_succeeds(
    report: Report,
) -> None:
    assert report["sdk_version"] == "2.21.2"
    assert set(report["methods"]["customer"]) == CUSTOMER_METHODS
    assert set(report["methods"]["customerGroup"]) == GROUP_METHODS
    assert set(report["called"]["customer"]) == CUSTOMER_METHODS
    assert set(report["called"]["customerGroup"]) == GROUP_METHODS
    failed = {
        step["name"]: step["error"]
        for step in report["steps"]
        if not step["ok"] and not step["name"].startswith("error_")
    }
    assert failed == {}


def test_given_the_js_sdk_when_groups_and_customers_are_written_then_fields_and_metadata_match(
    report: Report,
) -> None:
    steps = steps_by_name(report)
    ids, tag = report["ids"], report["tag"]

    created = steps["group_create_vip"]["result"]["customer_group"]
    assert set(created) == {"id", "name", "metadata", "created_at", "updated_at"}
    assert created["id"].startswith("cusgroup_") and created["metadata"] == {"tier": "gold"}
    updated = steps["group_update"]["result"]["customer_group"]
    assert updated == {"id": ids["vip"], "name": f"VIP+ {tag}", "metadata": updated["metadata"]}
    assert updated["metadata"] == {"tier": "gold", "region": "eu"}  # merged, as Medusa does
    assert steps["group_retrieve"]["result"]["customer_group"]["name"] == f"VIP+ {tag}"

    ann = steps["customer_create_ann"]["result"]["customer"]
    assert ann["id"].startswith("cus_") and ann["email"] == f"ann-{tag}@example.com"
    assert ann["groups"] == []  # fields=*groups on create
    assert steps["customer_update"]["result"]["customer"] == {
        "id": ids["ann"],
        "email": f"ann-{tag}@example.com",
        "first_name": "Ann",
        "last_name": "Lee-Smith",
        "metadata": {"source": "sdk", "vip": True},
    }
    retrieved = steps["customer_retrieve"]["result"]["customer"]
    assert (retrieved["company_name"], retrieved["phone"]) == ("Acme", "+4512345678")


def test_given_the_js_sdk_when_batch_calls_change_memberships_then_reads_and_lists_show_them(
    report: Report,
) -> None:
    steps = steps_by_name(report)
    ids, tag = report["ids"], report["tag"]

    assert steps["group_batch_add_customers"]["result"]["customer_group"]["id"] == ids["vip"]
    assert steps["customer_batch_groups"]["result"]["customer"]["id"] == ids["bob"]
    vip = steps["group_retrieve_customers"]["result"]["customer_group"]
    assert ids_of(vip["customers"]) == [ids["ann"]]  # bob left VIP through his own route
    bob = steps["customer_retrieve_groups"]["result"]["customer"]
    assert ids_of(bob["groups"]) == [ids["wholesale"]]

    listed = steps["group_list"]["result"]
    assert (listed["count"], listed["offset"], listed["limit"]) == (2, 0, 10)
    assert listed["customer_groups"] == [  # order=name, fields=id,name,customers.id
        {"id": ids["vip"], "name": f"VIP+ {tag}", "customers": [{"id": ids["ann"]}]},
        {"id": ids["wholesale"], "name": f"Wholesale {tag}", "customers": [{"id": ids["bob"]}]},
    ]
    by_customer = steps["group_list_by_customer"]["result"]["customer_groups"]
    assert by_customer == [{"id": ids["vip"], "name": f"VIP+ {tag}"}]

    customers = steps["customer_list"]["result"]
    assert customers["count"] == 2
    assert [(c["id"], ids_of(c["groups"])) for c in customers["customers"]] == [
        (ids["ann"], [ids["vip"]]),
        (ids["bob"], [ids["wholesale"]]),
    ]
    assert steps["customer_list_by_group"]["result"]["customers"] == [
        {"id": ids["bob"], "email": f"bob-{tag}@example.com"}
    ]
    assert ids_of(steps["customer_list_q"]["result"]["customers"]) == [ids["ann"]]


def test_given_the_js_sdk_when_addresses_are_managed_then_defaults_move_and_delete_answers(
    report: Report,
) -> None:
    steps = steps_by_name(report)
    ids = report["ids"]

    # Creating and updating an address answer with the customer, as in Medusa.
    for name in ("address_create_home", "address_create_office", "address_update"):
        assert steps[name]["result"]["customer"]["id"] == ids["ann"]
    listed = steps["address_list"]["result"]
    assert listed["count"] == 2 and ids["homeId"] and ids["officeId"]
    office = steps["address_retrieve"]["result"]["address"]
    assert (office["id"], office["customer_id"], office["city"]) == (
        ids["officeId"],
        ids["ann"],
        "Aarhus",
    )

    addresses = steps["customer_retrieve_addresses"]["result"]["customer"]["addresses"]
    flags = {
        a["address_name"]: (a["is_default_shipping"], a["is_default_billing"]) for a in addresses
    }
    # Office took the shipping default from Home; Home's update took it back.
    assert flags == {"Home": (True, True), "Office": (False, False)}
    home = next(a for a in addresses if a["address_name"] == "Home")
    assert (home["city"], home["postal_code"], home["metadata"]) == (
        "Odense",
        "5000",
        {"floor": "2"},
    )

    deleted = steps["address_delete"]["result"]
    assert {k: deleted[k] for k in ("id", "object", "deleted")} == {
        "id": ids["officeId"],
        "object": "customer_address",
        "deleted": True,
    }
    assert deleted["parent"]["id"] == ids["ann"]
    after = steps["address_list_after_delete"]["result"]
    assert (after["count"], ids_of(after["addresses"])) == (1, [ids["homeId"]])


def test_given_the_js_sdk_when_resources_are_deleted_then_it_gets_medusas_delete_answers(
    report: Report,
) -> None:
    steps = steps_by_name(report)
    ids = report["ids"]

    assert steps["group_delete"]["result"] == {
        "id": ids["wholesale"],
        "object": "customer_group",
        "deleted": True,
    }
    assert steps["customer_delete"]["result"] == {
        "id": ids["bob"],
        "object": "customer",
        "deleted": True,
    }
    remaining = steps["customer_retrieve_after_deletes"]["result"]["customer"]
    assert ids_of(remaining["groups"]) == [ids["vip"]]


def test_given_the_js_sdk_when_an_id_is_unknown_then_it_throws_its_fetch_error_with_404(
    report: Report,
) -> None:
    steps = steps_by_name(report)
    ids = report["ids"]
    expected = {
        "error_group_unknown": "Customer group with id: cusgroup_unknown",
        "error_customer_unknown": "Customer with id: cus_unknown",
        "error_group_retrieve_deleted": f"Customer group with id: {ids['wholesale']}",
        "error_customer_retrieve_deleted": f"Customer with id: {ids['bob']}",
        "error_address_unknown": "Customer address with id: cuaddr_unknown",
    }
    for name, subject in expected.items():
        step = steps[name]
        assert not step["ok"], name
        error = step["error"]
        assert (error["class"], error["status"], error["statusText"]) == (
            "FetchError",
            404,
            "Not Found",
        ), name
        # Medusa's wording is "<Entity> with id: <id> not found" (exact text: test_medusa_wire)
        assert error["message"].startswith(subject) and error["message"].endswith("not found")

    missing_name = steps["error_group_create_without_name"]["error"]
    assert (missing_name["class"], missing_name["status"]) == ("FetchError", 400)
    assert "name" in missing_name["message"]
