"""A client written for Medusa 2.21.2's Admin API gets Medusa's answer to its mistakes.

Status, ``type`` and message as Medusa words them (its route handlers, its database error
mapper, its zod error formatter), ported from Medusa's own HTTP tests
(``integration-tests/http/__tests__/customer-group/admin/customer-group.spec.ts`` and
``.../customer/admin/customer.spec.ts``) and from recorded answers of a real Medusa.
"""

from __future__ import annotations

from typing import Any

import pytest

from groupwire import Context, HookRejected, hookimpl
from tests.api.conftest import all_events, assert_error
from tests.api.test_customer_addresses import add_address
from tests.api.test_customer_groups import create_customer, create_group


def medusa_error(response: Any, status: int, type: str, message: str) -> None:
    """Exactly Medusa's error body: no other key (no ``code``)."""
    assert response.status_code == status, response.text
    assert response.json() == {"type": type, "message": message}


# --- unique values -------------------------------------------------------------------------


def test_given_a_group_name_in_use_when_creating_another_then_400_invalid_data(client, gw):
    create_group(client, "vip-customers", metadata={"data1": "value1"})

    response = client.post("/admin/customer-groups", json={"name": "vip-customers"})

    medusa_error(
        response, 400, "invalid_data", "Customer group with name: vip-customers, already exists."
    )
    assert [e.type for e in all_events(gw)] == ["customer_group.created"]


def test_given_an_email_in_use_when_creating_another_customer_then_400_invalid_data(client, gw):
    create_customer(client, "a@b.co")

    response = client.post("/admin/customers", json={"email": "a@b.co"})

    medusa_error(
        response,
        400,
        "invalid_data",
        "Customer with email: a@b.co, has_account: false, already exists.",
    )
    assert [e.type for e in all_events(gw)] == ["customer.created"]


# --- unknown ids ---------------------------------------------------------------------------


def test_given_no_such_group_when_retrieving_then_404_with_medusas_message(client):
    medusa_error(
        client.get("/admin/customer-groups/does-not-exist"),
        404,
        "not_found",
        "Customer group with id: does-not-exist not found",
    )
    medusa_error(
        client.get("/admin/customers/cus_nope"),
        404,
        "not_found",
        "Customer with id: cus_nope not found",
    )


def test_given_a_deleted_group_or_customer_when_retrieving_then_404_not_found(client):
    group = create_group(client, "vip-customers")
    customer = create_customer(client, "test1@email.com")
    assert client.delete(f"/admin/customer-groups/{group['id']}").json() == {
        "id": group["id"],
        "object": "customer_group",
        "deleted": True,
    }
    assert client.delete(f"/admin/customers/{customer['id']}").status_code == 200

    medusa_error(
        client.get(f"/admin/customer-groups/{group['id']}"),
        404,
        "not_found",
        f"Customer group with id: {group['id']} not found",
    )
    medusa_error(
        client.get(f"/admin/customers/{customer['id']}"),
        404,
        "not_found",
        f"Customer with id: {customer['id']} not found",
    )


def test_given_no_such_group_or_customer_when_updating_then_404_with_the_id_in_quotes(client, gw):
    medusa_error(
        client.post("/admin/customer-groups/cusgroup_nope", json={"name": "x"}),
        404,
        "not_found",
        'Customer group with id "cusgroup_nope" not found',
    )
    medusa_error(
        client.post("/admin/customers/cus_nope", json={"first_name": "x"}),
        404,
        "not_found",
        'Customer with id "cus_nope" not found',
    )
    assert all_events(gw) == []


def test_given_an_unknown_customer_when_adding_it_to_a_group_then_404_relationship(client, gw):
    group = create_group(client, "VIP")

    response = client.post(
        f"/admin/customer-groups/{group['id']}/customers", json={"add": ["cus_nope"]}
    )

    medusa_error(
        response,
        404,
        "not_found",
        "You tried to set relationship customer_id: cus_nope, but such entity does not exist",
    )
    assert [e.type for e in all_events(gw)] == ["customer_group.created"]


def test_given_no_such_group_when_adding_customers_to_it_then_404_relationship(client, gw):
    customer = create_customer(client, "test1@email.com")

    response = client.post(
        "/admin/customer-groups/does-not-exist/customers", json={"add": [customer["id"]]}
    )

    medusa_error(
        response,
        404,
        "not_found",
        "You tried to set relationship customer_group_id: does-not-exist, "
        "but such entity does not exist",
    )
    assert [e.type for e in all_events(gw)] == ["customer.created"]


def test_given_no_such_group_or_customer_when_adding_then_the_group_is_named_first(client):
    response = client.post(
        "/admin/customer-groups/does-not-exist/customers", json={"add": ["cus_nope"]}
    )
    assert "customer_group_id: does-not-exist," in response.json()["message"]


def test_given_an_unknown_group_when_adding_a_customer_to_it_then_404_relationship(client, gw):
    customer = create_customer(client, "a@b.co")

    response = client.post(
        f"/admin/customers/{customer['id']}/customer-groups", json={"add": ["cusgroup_nope"]}
    )

    medusa_error(
        response,
        404,
        "not_found",
        "You tried to set relationship customer_group_id: cusgroup_nope, "
        "but such entity does not exist",
    )
    assert [e.type for e in all_events(gw)] == ["customer.created"]


@pytest.mark.parametrize(
    ("add", "named"),
    [
        (["known"], "customer_id: cus_nope"),  # each row: the group's key checked first
        (["cusgroup_nope"], "customer_group_id: cusgroup_nope"),
        (["known", "cusgroup_nope"], "customer_id: cus_nope"),  # the first row fails first
    ],
)
def test_given_no_such_customer_when_adding_it_to_groups_then_the_first_bad_key_is_named(
    client, add, named
):
    group = create_group(client, "VIP")
    add = [group["id"] if gid == "known" else gid for gid in add]

    response = client.post("/admin/customers/cus_nope/customer-groups", json={"add": add})

    medusa_error(
        response,
        404,
        "not_found",
        f"You tried to set relationship {named}, but such entity does not exist",
    )


def test_given_unknown_ids_to_remove_then_200_and_nothing_happens_as_in_medusa(client, gw):
    group = create_group(client, "VIP")
    customer = create_customer(client, "a@b.co")
    before = len(all_events(gw))

    from_group = client.post(
        f"/admin/customer-groups/{group['id']}/customers", json={"remove": ["cus_nope"]}
    )
    from_customer = client.post(
        f"/admin/customers/{customer['id']}/customer-groups", json={"remove": ["cusgroup_nope"]}
    )

    assert from_group.status_code == 200, from_group.text
    assert from_group.json()["customer_group"]["id"] == group["id"]
    assert from_customer.status_code == 200, from_customer.text
    assert from_customer.json()["customer"]["id"] == customer["id"]
    assert len(all_events(gw)) == before


def test_given_unknown_ids_to_remove_and_known_ones_to_add_then_the_known_ones_join(client, gw):
    group = create_group(client, "VIP")
    customer = create_customer(client, "a@b.co")

    response = client.post(
        f"/admin/customer-groups/{group['id']}/customers",
        json={"add": [customer["id"]], "remove": ["cus_nope"]},
        params={"fields": "*customers"},
    )

    assert response.status_code == 200, response.text
    assert [c["id"] for c in response.json()["customer_group"]["customers"]] == [customer["id"]]
    assert all_events(gw)[-1].type == "customer_group.customer_added"


# --- malformed bodies ----------------------------------------------------------------------


GROUPS = "/admin/customer-groups"
MEMBERS = "/admin/customer-groups/cusgroup_x/customers"
CUSTOMERS = "/admin/customers"


def expected(field: str, type: str, got: str) -> str:
    return f"Expected type: '{type}' for field '{field}', got: '{got}'"


BAD_BODIES = [
    (GROUPS, {"name": 123}, expected("name", "string", "123")),
    (GROUPS, {"name": None}, expected("name", "string", "null")),
    (GROUPS, {"name": True}, expected("name", "string", "true")),
    (GROUPS, {"name": 1.5}, expected("name", "string", "1.5")),
    (GROUPS, {"name": 1e21}, expected("name", "string", "1e+21")),
    (GROUPS, {"name": 0.0000001}, expected("name", "string", "1e-7")),
    (GROUPS, {"name": [1, None, "a"]}, expected("name", "string", "1,,a")),
    (GROUPS, {"name": {"a": 1}}, expected("name", "string", "[object Object]")),
    (GROUPS, {}, "Field 'name' is required"),
    (GROUPS, {"name": "G", "metadata": "x"}, expected("metadata", "record", "x")),
    (GROUPS, {"name": "G", "foo": 1, "bar": 2}, "Unrecognized fields: 'foo, bar'"),
    (GROUPS, {"name": "G", "additional_data": "x"}, expected("additional_data", "record", "x")),
    (MEMBERS, {"add": "notalist"}, expected("add", "array", "notalist")),
    (MEMBERS, {"add": ["a", 7]}, "Field 'add, 1' is required"),  # Medusa's lookup quirk
    (
        CUSTOMERS,
        {"email": 5, "phone": 6, "first_name": 7, "x": 1},  # three issues, in field order
        "; ".join(
            [
                expected("email", "string", "5"),
                expected("first_name", "string", "7"),
                expected("phone", "string", "6"),
            ]
        ),
    ),
    (
        CUSTOMERS,
        {"phone": 6, "x": 1, "y": 2},
        f"{expected('phone', 'string', '6')}; Unrecognized fields: 'x, y'",
    ),
    (CUSTOMERS, {"additional_data": "x"}, expected("additional_data", "record", "x")),
]


@pytest.mark.parametrize(("path", "body", "message"), BAD_BODIES)
def test_given_a_body_of_the_wrong_shape_then_400_worded_as_medusas_validator(
    client, gw, path, body, message
):
    response = client.post(path, json=body)

    medusa_error(response, 400, "invalid_data", f"Invalid request: {message}")
    assert all_events(gw) == []


def test_given_a_query_of_the_wrong_type_then_400_worded_as_medusas_validator(client):
    medusa_error(
        client.get("/admin/customer-groups", params={"limit": "abc"}),
        400,
        "invalid_data",
        "Invalid request: Expected type: 'number' for field 'limit', got: 'abc'",
    )


# --- deletes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind"), [("customer-groups", "customer_group"), ("customers", "customer")]
)
def test_given_a_deleted_entity_when_deleting_it_again_then_200_and_no_second_event(
    client, gw, path, kind
):
    created = (
        create_group(client, "VIP")
        if kind == "customer_group"
        else create_customer(client, "a@b.co")
    )
    url = f"/admin/{path}/{created['id']}"
    assert client.delete(url).status_code == 200
    events = len(all_events(gw))

    again = client.delete(url)

    assert again.status_code == 200, again.text
    assert again.json() == {"id": created["id"], "object": kind, "deleted": True}
    assert len(all_events(gw)) == events
    assert_error(client.get(url), 404, "not_found")


def test_given_an_id_that_never_existed_when_deleting_then_200_as_medusa_and_nothing_happens(
    client, gw
):
    for path, kind, id in (
        ("customer-groups", "customer_group", "cusgroup_nope"),
        ("customers", "customer", "cus_nope"),
    ):
        response = client.delete(f"/admin/{path}/{id}")
        assert response.status_code == 200, response.text
        assert response.json() == {"id": id, "object": kind, "deleted": True}
    assert all_events(gw) == []


def test_given_an_if_match_on_a_deleted_group_when_deleting_then_still_404(client, gw):
    group = create_group(client, "VIP")
    url = f"/admin/customer-groups/{group['id']}"
    assert client.delete(url).status_code == 200

    assert_error(client.delete(url, headers={"If-Match": '"2"'}), 404, "not_found")


# --- vetoes --------------------------------------------------------------------------------


class ClosedGroups:
    @hookimpl
    def before_add_customer_to_group(self, group, customers, context):
        raise HookRejected(f"{group.name} takes no new members")


def test_given_a_vetoing_hook_then_medusas_answer_to_its_own_not_allowed_and_nothing_changes(
    client, gw
):
    """Medusa 2.21.2 maps ``not_allowed`` to 400 with ``{type, message}`` and no ``code``: a
    veto looks exactly like a refusal of Medusa's own."""
    group = create_group(client, "VIP")
    customer = create_customer(client, "a@b.co")
    gw.register(ClosedGroups())
    before = len(all_events(gw))

    responses = [
        client.post(
            f"/admin/customer-groups/{group['id']}/customers", json={"add": [customer["id"]]}
        ),
        client.post(
            f"/admin/customers/{customer['id']}/customer-groups", json={"add": [group["id"]]}
        ),
    ]

    for response in responses:
        medusa_error(response, 400, "not_allowed", "VIP takes no new members")
    assert len(all_events(gw)) == before


# --- paging --------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [5000, 2**31 - 1])
def test_given_any_limit_when_listing_then_every_row_up_to_it_as_medusa(client, limit):
    for name in ("Gold", "Trial"):
        create_group(client, name)
    create_customer(client, "a@b.co")

    groups = client.get("/admin/customer-groups", params={"limit": limit})
    customers = client.get("/admin/customers", params={"limit": limit})

    assert groups.status_code == 200, groups.text
    assert (groups.json()["count"], groups.json()["limit"]) == (2, limit)
    assert len(groups.json()["customer_groups"]) == 2
    assert customers.status_code == 200, customers.text
    assert (customers.json()["count"], customers.json()["limit"]) == (1, limit)


# --- additional_data -----------------------------------------------------------------------


class AdditionalDataReader:
    """Records what each before- and after-hook found in ``context.additional_data``."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def _saw(self, hook: str, context: Context) -> None:
        self.seen.append((hook, context.additional_data))

    @hookimpl
    def before_create_customer(self, draft, context):
        self._saw("before_create_customer", context)
        if context.additional_data and "erp_id" in context.additional_data:
            draft.metadata = {**(draft.metadata or {}), "erp": context.additional_data["erp_id"]}

    @hookimpl
    def after_create_customer(self, customer, context):
        self._saw("after_create_customer", context)

    @hookimpl
    def before_update_customer(self, customer, update, context):
        self._saw("before_update_customer", context)

    @hookimpl
    def after_update_customer(self, customer, changes, context):
        self._saw("after_update_customer", context)

    @hookimpl
    def before_create_customer_address(self, customer, draft, context):
        self._saw("before_create_customer_address", context)

    @hookimpl
    def after_create_customer_address(self, customer, address, context):
        self._saw("after_create_customer_address", context)

    @hookimpl
    def before_update_customer_address(self, customer, address, update, context):
        self._saw("before_update_customer_address", context)

    @hookimpl
    def after_update_customer_address(self, customer, address, changes, context):
        self._saw("after_update_customer_address", context)

    @hookimpl
    def before_create_customer_group(self, draft, context):
        self._saw("before_create_customer_group", context)

    @hookimpl
    def after_create_customer_group(self, group, context):
        self._saw("after_create_customer_group", context)

    @hookimpl
    def before_update_customer_group(self, group, update, context):
        self._saw("before_update_customer_group", context)

    @hookimpl
    def after_update_customer_group(self, group, changes, context):
        self._saw("after_update_customer_group", context)

    @hookimpl
    def before_add_customer_to_group(self, group, customers, context):
        self._saw("before_add_customer_to_group", context)

    @hookimpl
    def after_add_customer_to_group(self, group, customer_ids, context):
        self._saw("after_add_customer_to_group", context)

    @hookimpl
    def before_remove_customer_from_group(self, group, customers, reason, context):
        self._saw("before_remove_customer_from_group", context)


def test_given_additional_data_when_creating_a_customer_then_the_hooks_read_it(client, gw):
    reader = AdditionalDataReader()
    gw.register(reader)

    response = client.post(
        "/admin/customers",
        json={"email": "a@b.co", "additional_data": {"erp_id": "E-42", "nested": {"x": [1]}}},
    )

    assert response.status_code == 200, response.text
    data = {"erp_id": "E-42", "nested": {"x": [1]}}
    assert reader.seen == [("before_create_customer", data), ("after_create_customer", data)]
    customer = response.json()["customer"]
    assert customer["metadata"] == {"erp": "E-42"}  # a hook chose to store a part of it
    assert "additional_data" not in customer


def test_given_additional_data_on_the_bodies_medusa_takes_it_then_every_hook_gets_it(client, gw):
    customer = create_customer(client, "a@b.co")
    address = add_address(client, customer["id"], city="Paris")
    reader = AdditionalDataReader()
    gw.register(reader)
    data = {"source": "erp"}
    url = f"/admin/customers/{customer['id']}"

    responses = [
        client.post(url, json={"first_name": "Ada", "additional_data": data}),
        client.post(f"{url}/addresses", json={"city": "Lyon", "additional_data": data}),
        client.post(
            f"{url}/addresses/{address['id']}", json={"city": "Nice", "additional_data": data}
        ),
    ]

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert reader.seen == [
        ("before_update_customer", data),
        ("after_update_customer", data),
        ("before_create_customer_address", data),
        ("after_create_customer_address", data),
        ("before_update_customer_address", data),
        ("after_update_customer_address", data),
    ]


def test_given_additional_data_on_group_and_membership_bodies_then_group_hooks_get_it_too(
    client, gw
):
    """Medusa refuses it there; Groupwire takes it, so group hooks have the same extension
    point as Medusa's customer workflows (a Groupwire addition, like ``description``)."""
    customer = create_customer(client, "a@b.co")
    reader = AdditionalDataReader()
    gw.register(reader)
    data = {"campaign": "spring"}

    created = client.post(GROUPS, json={"name": "VIP", "additional_data": data})
    group_id = created.json()["customer_group"]["id"]
    responses = [
        created,
        client.post(f"{GROUPS}/{group_id}", json={"name": "Gold", "additional_data": data}),
        client.post(
            f"{GROUPS}/{group_id}/customers",
            json={"add": [customer["id"]], "additional_data": data},
        ),
        client.post(
            f"{CUSTOMERS}/{customer['id']}/customer-groups",
            json={"remove": [group_id], "additional_data": data},
        ),
    ]

    assert [r.status_code for r in responses] == [200, 200, 200, 200]
    assert reader.seen == [
        ("before_create_customer_group", data),
        ("after_create_customer_group", data),
        ("before_update_customer_group", data),
        ("after_update_customer_group", data),
        ("before_add_customer_to_group", data),
        ("after_add_customer_to_group", data),
        ("before_remove_customer_from_group", data),
    ]
    assert all(
        "additional_data" not in r.json()["customer_group" if n < 3 else "customer"]
        for n, r in enumerate(responses)
    )
    assert all("campaign" not in str(e.data) for e in all_events(gw))


def test_given_no_additional_data_then_the_hooks_see_none(client, gw):
    reader = AdditionalDataReader()
    gw.register(reader)

    create_customer(client, "a@b.co")
    create_customer(client, "b@b.co", additional_data=None)

    assert {data for _, data in reader.seen} == {None}


def test_given_additional_data_then_it_is_in_no_event_and_no_row(client, gw):
    response = client.post(
        "/admin/customers", json={"email": "a@b.co", "additional_data": {"secret": "s3"}}
    )
    customer_id = response.json()["customer"]["id"]
    client.post(
        f"/admin/customers/{customer_id}",
        json={"first_name": "A", "additional_data": {"secret": "s3"}},
    )

    assert all("s3" not in repr(event.data) for event in all_events(gw))
    fetched = client.get(f"/admin/customers/{customer_id}", params={"fields": "*addresses"})
    assert "s3" not in fetched.text


def test_given_the_library_then_group_hooks_get_additional_data_from_the_context(gw):
    reader = AdditionalDataReader()
    gw.register(reader)

    gw.groups.create("VIP", context=Context(additional_data={"campaign": "spring"}))

    assert reader.seen == [
        ("before_create_customer_group", {"campaign": "spring"}),
        ("after_create_customer_group", {"campaign": "spring"}),
    ]
