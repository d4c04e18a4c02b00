"""The Medusa harness is a real Medusa 2.21.2: its Admin API, its event bus, its subscriber."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from bullmq import Queue

from tests.medusa.harness import MedusaServer

pytestmark = pytest.mark.medusa


def test_given_medusa_when_a_customer_joins_a_group_through_the_admin_api_then_both_read_back(
    medusa: MedusaServer,
) -> None:
    name = f"VIP {uuid.uuid4().hex[:8]}"
    email = f"{uuid.uuid4().hex[:8]}@shop.example"

    created_group = medusa.client.post("/admin/customer-groups", json={"name": name})
    created_customer = medusa.client.post(
        "/admin/customers", json={"email": email, "first_name": "Ada"}
    )
    assert created_group.status_code == 200, created_group.text
    assert created_customer.status_code == 200, created_customer.text
    group = created_group.json()["customer_group"]
    customer = created_customer.json()["customer"]
    assert group["id"].startswith("cusgroup_") and group["name"] == name
    assert customer["id"].startswith("cus_") and customer["email"] == email

    added = medusa.client.post(
        f"/admin/customer-groups/{group['id']}/customers", json={"add": [customer["id"]]}
    )
    assert added.status_code == 200, added.text
    assert added.json()["customer_group"]["id"] == group["id"]

    group_read = medusa.client.get(
        f"/admin/customer-groups/{group['id']}", params={"fields": "*customers"}
    )
    customer_read = medusa.client.get(
        f"/admin/customers/{customer['id']}", params={"fields": "*groups"}
    )
    assert group_read.status_code == 200, group_read.text
    assert customer_read.status_code == 200, customer_read.text
    assert [c["id"] for c in group_read.json()["customer_group"]["customers"]] == [customer["id"]]
    assert [g["id"] for g in customer_read.json()["customer"]["groups"]] == [group["id"]]


def test_given_medusa_when_a_customer_is_created_then_medusas_own_event_reaches_the_recorder(
    medusa: MedusaServer,
) -> None:
    created = medusa.client.post("/admin/customers", json={"email": f"{uuid.uuid4().hex}@x.io"})
    assert created.status_code == 200, created.text
    customer_id = created.json()["customer"]["id"]

    events = medusa.wait_for_recorded(
        lambda e: e["name"] == "customer.created" and e["data"] == {"id": customer_id}
    )

    assert len(events) == 1


def test_given_a_job_published_with_bullmq_then_medusas_subscriber_records_it_once_intact(
    medusa: MedusaServer,
) -> None:
    data = {
        "id": f"cusgroup_{uuid.uuid4().hex}",
        "customer_id": "cus_01JPUBLISHEDFROMPYTHON00",
        "nested": {"tags": ["a", "b"], "count": 3, "ratio": 0.5, "none": None},
    }
    metadata = {"source": "groupwire", "event_id": uuid.uuid4().hex}

    counts = asyncio.run(publish_and_drain(medusa, "customer_group.customer_added", data, metadata))

    events = medusa.wait_for_recorded(lambda e: e["data"] == data, timeout=5)
    assert events == [{"name": "customer_group.customer_added", "data": data, "metadata": metadata}]
    assert counts == {"waiting": 0, "active": 0, "delayed": 0, "prioritized": 0, "failed": 0}


def test_given_a_batch_body_over_100_kb_then_medusa_does_not_refuse_it_as_too_large(
    medusa: MedusaServer,
) -> None:
    group = medusa.client.post("/admin/customer-groups", json={"name": uuid.uuid4().hex})
    unknown_ids = [f"cus_{i:026d}" for i in range(5000)]  # about 170 kB of JSON

    response = medusa.client.post(
        f"/admin/customer-groups/{group.json()['customer_group']['id']}/customers",
        json={"add": unknown_ids},
    )

    # Past the body parser, Medusa itself rejects the unknown customers.
    assert response.status_code == 404, response.text
    assert response.json()["type"] == "not_found"


async def publish_and_drain(
    medusa: MedusaServer, name: str, data: dict[str, Any], metadata: dict[str, Any]
) -> dict[str, int]:
    """Add one job as Medusa's own emitter does; return the queue's counts once it is done."""
    options = {"connection": medusa.redis_url, "prefix": medusa.queue_prefix}
    queue = Queue(medusa.queue_name, options)
    try:
        await queue.add(
            name, {"data": data, "metadata": metadata}, {"attempts": 3, "removeOnComplete": True}
        )
        types = ("waiting", "active", "delayed", "prioritized", "failed")
        for _ in range(600):
            counts: dict[str, int] = await queue.getJobCounts(*types)
            if not any(counts[t] for t in types if t != "failed"):
                return counts
            await asyncio.sleep(0.05)
        return counts
    finally:
        await queue.close()
