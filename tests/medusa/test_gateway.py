"""The gateway: Groupwire's before-hooks in front of a real Medusa's Admin API.

Medusa is the harness's (real, 2.21.2); Groupwire's copy is kept by a real capture into a
PostgreSQL schema of its own; the gateway is served by uvicorn on a real port. What Medusa
stored is read from its own PostgreSQL.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from groupwire import HookRejected
from groupwire.domain.changes import Context, GroupDraft, ProposedUpdate
from groupwire.domain.models import Customer, CustomerGroup
from groupwire.hooks import hookimpl
from groupwire.medusa.gateway import GatewayOptions, MedusaGateway
from groupwire.medusa.smart_groups import set_rule
from tests.conftest import PostgresSchemas
from tests.medusa.capturing import Captured, capturing
from tests.medusa.gatewaying import serving
from tests.medusa.harness import MedusaServer, free_port

pytestmark = pytest.mark.medusa


class StorePolicy:
    """A merchant's rules, as a Groupwire plugin."""

    @hookimpl
    def before_create_customer_group(self, draft: GroupDraft, context: Context) -> None:
        if draft.name.startswith("forbidden"):
            raise HookRejected(f"Groups named {draft.name!r} are not allowed here")
        if context.additional_data and context.additional_data.get("approved") is False:
            raise HookRejected("This group was not approved")
        if draft.name.strip().startswith("stamp"):
            draft.name = draft.name.strip()
            draft.metadata = {**(draft.metadata or {}), "stamped_by": "groupwire"}

    @hookimpl
    def before_update_customer_group(
        self, group: CustomerGroup, update: ProposedUpdate, context: Context
    ) -> None:
        name = update.values.get("name")
        if isinstance(name, str) and name.startswith("forbidden"):
            raise HookRejected("Renaming to a forbidden name is not allowed")
        metadata = update.values.get("metadata")
        if isinstance(metadata, dict) and "review" in metadata:
            reviewed = {k: v for k, v in metadata.items() if k not in ("review", "draft")}
            update.values["metadata"] = {**reviewed, "reviewed": True}

    @hookimpl
    def before_delete_customer_group(self, group: CustomerGroup, context: Context) -> None:
        if (group.metadata or {}).get("protected"):
            raise HookRejected("This group is protected")

    @hookimpl
    def before_add_customer_to_group(
        self, group: CustomerGroup, customers: list[Customer], context: Context
    ) -> None:
        if group.name.startswith("closed"):
            raise HookRejected(f"{group.name} takes no new members")
        customers[:] = [c for c in customers if not c.email_domain.startswith("blocked")]

    @hookimpl
    def before_remove_customer_from_group(
        self, group: CustomerGroup, customers: list[Customer], reason: str, context: Context
    ) -> None:
        if (group.metadata or {}).get("locked") and reason == "removed":
            raise HookRejected("Members of a locked group stay")


@pytest.fixture(scope="module")
def captured(medusa: MedusaServer, postgres_schemas: PostgresSchemas) -> Iterator[Captured]:
    with postgres_schemas.fresh() as url, capturing(medusa, url) as value:
        value.gw.register(StorePolicy())
        yield value


@pytest.fixture(scope="module")
def gateway_url(medusa: MedusaServer, captured: Captured) -> Iterator[str]:
    options = GatewayOptions(upstream=medusa.base_url, copy_wait=0.3)
    with serving(MedusaGateway(captured.gw.service, options)) as url:
        yield url


@pytest.fixture
def via(gateway_url: str, medusa: MedusaServer) -> Iterator[httpx.Client]:
    """A client of the gateway with Medusa's secret key."""
    with httpx.Client(base_url=gateway_url, auth=(medusa.api_key, ""), timeout=60) as client:
        yield client


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return dict(response.json())


def new_group(medusa: MedusaServer, captured: Captured, **body: Any) -> dict[str, Any]:
    """A group made directly in Medusa and captured into the copy."""
    body.setdefault("name", f"Group {uuid.uuid4().hex[:8]}")
    group = ok(medusa.client.post("/admin/customer-groups", json=body))["customer_group"]
    captured.sync()
    return dict(group)


def new_customer(medusa: MedusaServer, captured: Captured, domain: str = "shop.example") -> str:
    email = f"{uuid.uuid4().hex[:10]}@{domain}"
    customer = ok(medusa.client.post("/admin/customers", json={"email": email}))["customer"]
    captured.sync()
    return str(customer["id"])


def groups_named(captured: Captured, name: str) -> list[tuple[Any, ...]]:
    return captured.sql(
        "SELECT name, metadata FROM customer_group WHERE name = %s AND deleted_at IS NULL",
        (name,),
    )


def members(captured: Captured, group_id: str) -> set[str]:
    rows = captured.sql(
        "SELECT customer_id FROM customer_group_customer"
        " WHERE customer_group_id = %s AND deleted_at IS NULL",
        (group_id,),
    )
    return {row[0] for row in rows}


def group_row(captured: Captured, group_id: str) -> tuple[Any, ...]:
    rows = captured.sql(
        "SELECT name, metadata, deleted_at FROM customer_group WHERE id = %s", (group_id,)
    )
    assert len(rows) == 1
    return rows[0]


# --- vetoes ----------------------------------------------------------------------------------


def test_given_a_vetoing_hook_when_a_group_is_created_through_the_gateway_then_medusa_never_sees_it(
    via: httpx.Client, captured: Captured
) -> None:
    name = f"forbidden {uuid.uuid4().hex[:8]}"

    response = via.post("/admin/customer-groups", json={"name": name})

    assert response.status_code == 400
    assert response.json() == {
        "type": "not_allowed",
        "message": f"Groups named {name!r} are not allowed here",
    }
    assert groups_named(captured, name) == []


@pytest.mark.parametrize("encoding", ["form", "gzip"])
def test_given_a_vetoing_hook_when_the_body_comes_urlencoded_or_gzipped_then_it_is_vetoed_too(
    via: httpx.Client, captured: Captured, encoding: str
) -> None:
    name = f"forbidden {uuid.uuid4().hex[:8]}"
    if encoding == "form":
        response = via.post("/admin/customer-groups", data={"name": name})
    else:
        response = via.post(
            "/admin/customer-groups",
            content=gzip.compress(json.dumps({"name": name}).encode()),
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )

    assert response.status_code == 400, response.text
    assert groups_named(captured, name) == []


def test_given_a_vetoing_hook_when_the_route_is_spelled_otherwise_then_it_is_vetoed_too(
    via: httpx.Client, captured: Captured
) -> None:
    name = f"forbidden {uuid.uuid4().hex[:8]}"

    response = via.post("/ADMIN/Customer-Groups/", json={"name": name})

    assert response.status_code == 400, response.text
    assert groups_named(captured, name) == []


def test_given_no_credentials_when_a_vetoed_write_comes_then_medusas_401_answers_not_the_veto(
    gateway_url: str, medusa: MedusaServer, captured: Captured
) -> None:
    name = f"forbidden {uuid.uuid4().hex[:8]}"

    response = httpx.post(f"{gateway_url}/admin/customer-groups", json={"name": name})
    bad_key = httpx.post(
        f"{gateway_url}/admin/customer-groups", json={"name": name}, auth=("sk_wrong", "")
    )

    assert response.status_code == 401 and response.json() == {"message": "Unauthorized"}
    assert bad_key.status_code == 401
    assert groups_named(captured, name) == []


def test_given_a_hook_reading_additional_data_then_it_may_veto_and_it_is_never_forwarded(
    via: httpx.Client, captured: Captured
) -> None:
    refused, accepted = (f"Data {uuid.uuid4().hex[:8]}" for _ in range(2))

    vetoed = via.post(
        "/admin/customer-groups", json={"name": refused, "additional_data": {"approved": False}}
    )
    created = via.post(
        "/admin/customer-groups", json={"name": accepted, "additional_data": {"approved": True}}
    )

    assert vetoed.status_code == 400
    assert ok(created)["customer_group"]["name"] == accepted  # Medusa would refuse the field
    assert groups_named(captured, refused) == []


def test_given_a_vetoing_hook_when_a_group_is_renamed_or_deleted_then_medusa_keeps_it(
    via: httpx.Client, medusa: MedusaServer, captured: Captured
) -> None:
    group = new_group(medusa, captured, metadata={"protected": True})

    renamed = via.post(f"/admin/customer-groups/{group['id']}", json={"name": "forbidden!"})
    deleted = via.delete(f"/admin/customer-groups/{group['id']}")

    assert (renamed.status_code, renamed.json()["type"]) == (400, "not_allowed")
    assert deleted.json() == {"type": "not_allowed", "message": "This group is protected"}
    assert group_row(captured, group["id"]) == (group["name"], {"protected": True}, None)


def test_given_a_closed_group_when_customers_are_added_by_either_route_then_none_joins(
    via: httpx.Client, medusa: MedusaServer, captured: Captured
) -> None:
    group = new_group(medusa, captured, name=f"closed {uuid.uuid4().hex[:8]}")
    customer = new_customer(medusa, captured)

    batch = via.post(f"/admin/customer-groups/{group['id']}/customers", json={"add": [customer]})
    single = via.post(f"/admin/customers/{customer}/customer-groups", json={"add": [group["id"]]})

    assert batch.status_code == 400 and single.status_code == 400
    assert single.json()["message"] == f"{group['name']} takes no new members"
    assert members(captured, group["id"]) == set()


def test_given_a_smart_group_when_members_are_changed_by_hand_then_the_gateway_refuses(
    via: httpx.Client, medusa: MedusaServer, captured: Captured
) -> None:
    group = new_group(medusa, captured)
    customer = new_customer(medusa, captured)
    set_rule(
        captured.gw.engine, group["id"], {"email": {"$like": "%@vip.example"}}, datetime.now(UTC)
    )

    batch = via.post(f"/admin/customer-groups/{group['id']}/customers", json={"add": [customer]})
    single = via.post(f"/admin/customers/{customer}/customer-groups", json={"add": [group["id"]]})

    for answer in (batch, single):
        assert answer.status_code == 400, answer.text
        assert answer.json()["type"] == "not_allowed"
        assert "is a smart group" in answer.json()["message"]
    assert members(captured, group["id"]) == set()


def test_given_a_locked_group_when_a_member_is_removed_then_it_stays(
    via: httpx.Client, medusa: MedusaServer, captured: Captured
) -> None:
    group = new_group(medusa, captured, metadata={"locked": True})
    customer = new_customer(medusa, captured)
    ok(via.post(f"/admin/customer-groups/{group['id']}/customers", json={"add": [customer]}))
    captured.sync()

    removed = via.post(
        f"/admin/customer-groups/{group['id']}/customers", json={"remove": [customer]}
    )

    assert removed.status_code == 400
    assert members(captured, group["id"]) == {customer}


# --- modifications ---------------------------------------------------------------------------


def test_given_a_modifying_hook_when_a_group_is_created_then_medusa_stores_the_modified_group(
    via: httpx.Client, captured: Captured
) -> None:
    name = f"stamp {uuid.uuid4().hex[:8]}"

    created = ok(via.post("/admin/customer-groups", json={"name": f"  {name}  "}))

    assert created["customer_group"]["name"] == name
    assert groups_named(captured, name) == [(name, {"stamped_by": "groupwire"})]


def test_given_a_modifying_hook_when_metadata_is_updated_then_medusa_stores_what_the_hook_left(
    via: httpx.Client, medusa: MedusaServer, captured: Captured
) -> None:
    group = new_group(medusa, captured, metadata={"tier": "gold", "draft": "yes"})

    ok(
        via.post(
            f"/admin/customer-groups/{group['id']}",
            json={"metadata": {"review": "please", "region": "eu"}},
        )
    )

    # merged by Medusa's rule, then "review" and "draft" dropped and "reviewed" added
    assert group_row(captured, group["id"])[1] == {
        "tier": "gold",
        "region": "eu",
        "reviewed": True,
    }


def test_given_a_filtering_hook_when_customers_are_added_then_only_the_kept_ones_join(
    via: httpx.Client, medusa: MedusaServer, captured: Captured
) -> None:
    group = new_group(medusa, captured)
    kept = new_customer(medusa, captured)
    blocked = new_customer(medusa, captured, domain="blocked.example")
    other = new_group(medusa, captured)

    ok(via.post(f"/admin/customer-groups/{group['id']}/customers", json={"add": [kept, blocked]}))
    ok(via.post(f"/admin/customers/{blocked}/customer-groups", json={"add": [other["id"]]}))

    assert members(captured, group["id"]) == {kept}
    assert members(captured, other["id"]) == set()


# --- Groupwire's copy behind -----------------------------------------------------------------


def test_given_a_group_the_copy_has_not_captured_yet_then_the_write_is_refused_until_it_has(
    via: httpx.Client, medusa: MedusaServer, captured: Captured
) -> None:
    name = f"Fresh {uuid.uuid4().hex[:8]}"
    group = ok(medusa.client.post("/admin/customer-groups", json={"name": name}))
    group_id = group["customer_group"]["id"]  # not captured: no sync

    behind = via.post(f"/admin/customer-groups/{group_id}", json={"name": "forbidden, early"})
    captured.sync()
    caught_up = via.post(f"/admin/customer-groups/{group_id}", json={"name": "forbidden, later"})

    assert behind.status_code == 503 and behind.headers["retry-after"] == "1"
    assert behind.json()["type"] == "unexpected_state"
    assert caught_up.status_code == 400
    assert group_row(captured, group_id)[0] == name


def test_given_an_id_medusa_does_not_know_then_medusas_own_answer_passes_through(
    via: httpx.Client, medusa: MedusaServer
) -> None:
    path = f"/admin/customer-groups/cusgroup_{uuid.uuid4().hex}"

    through = via.post(path, json={"name": "forbidden too"})
    direct = medusa.client.post(path, json={"name": "forbidden too"})

    assert through.status_code == direct.status_code == 404
    assert through.json() == direct.json()


# --- everything else passes through ----------------------------------------------------------


def test_given_a_read_then_the_gateway_answers_exactly_what_medusa_answers(
    via: httpx.Client, medusa: MedusaServer, captured: Captured
) -> None:
    new_group(medusa, captured)
    for path, params in (
        ("/admin/customer-groups", {"limit": "5", "order": "created_at"}),
        ("/admin/customers", {"limit": "3", "fields": "id,email"}),
        ("/admin/regions", {}),
    ):
        through = via.get(path, params=params)
        direct = medusa.client.get(path, params=params)

        assert through.status_code == direct.status_code == 200
        assert through.content == direct.content
        for header in ("content-type", "etag", "x-powered-by", "content-length"):
            assert through.headers.get(header) == direct.headers.get(header), header


def test_given_no_credentials_then_medusas_401_passes_through_unchanged(
    gateway_url: str, medusa: MedusaServer
) -> None:
    through = httpx.get(f"{gateway_url}/admin/customer-groups")
    direct = httpx.get(f"{medusa.base_url}/admin/customer-groups")

    assert through.status_code == direct.status_code == 401
    assert through.content == direct.content


def test_given_a_session_login_then_set_cookie_comes_back_and_the_cookie_authenticates(
    gateway_url: str, medusa: MedusaServer
) -> None:
    # Medusa's session cookie is Secure: it sets it only when told TLS ended in front of it.
    login_headers = {"Authorization": f"Bearer {medusa.jwt}", "X-Forwarded-Proto": "https"}
    through = httpx.post(f"{gateway_url}/auth/session", headers=login_headers)
    direct = httpx.post(f"{medusa.base_url}/auth/session", headers=login_headers)
    assert through.status_code == direct.status_code == 200, through.text
    cookies = through.headers.get_list("set-cookie")
    assert len(cookies) == len(direct.headers.get_list("set-cookie")) >= 1
    session = cookies[0].split(";", 1)[0]

    listed = httpx.get(
        f"{gateway_url}/admin/customer-groups",
        params={"limit": 1},
        headers={"Cookie": session, "X-Forwarded-Proto": "https"},
    )

    assert listed.status_code == 200, listed.text


def test_given_a_large_response_then_it_streams_through_byte_for_byte(
    via: httpx.Client, medusa: MedusaServer, captured: Captured
) -> None:
    tag = uuid.uuid4().hex[:8]
    blob = "x" * 60_000
    for index in range(25):  # 25 groups of 60 kB metadata: a 1.5 MB answer
        ok(
            medusa.client.post(
                "/admin/customer-groups",
                json={"name": f"Big {tag} {index}", "metadata": {"b": blob}},
            )
        )
    params = {"q": f"Big {tag}", "limit": "50"}

    with via.stream("GET", "/admin/customer-groups", params=params) as through:
        chunks = [chunk for chunk in through.iter_raw()]
    direct = medusa.client.get("/admin/customer-groups", params=params)

    assert through.status_code == 200
    assert b"".join(chunks) == direct.content
    assert len(direct.content) > 1_500_000 and len(chunks) > 1


def test_given_medusa_unreachable_then_the_gateway_answers_502_in_medusas_shape(
    captured: Captured,
) -> None:
    options = GatewayOptions(upstream=f"http://127.0.0.1:{free_port()}")
    with serving(MedusaGateway(captured.gw.service, options)) as url:
        read = httpx.get(f"{url}/admin/customer-groups")
        write = httpx.post(f"{url}/admin/customer-groups", json={"name": "x"}, auth=("k", ""))

    for response in (read, write):
        assert response.status_code == 502
        assert response.json() == {
            "type": "unexpected_state",
            "message": "Medusa could not be reached (ConnectError)",
        }
