"""The same filtered lists from a real Medusa 2.21.2 and from Groupwire: the same rows.

One small world (tests/api/list_filter_cases.py) is built in both through their Admin APIs;
every case then runs against both, and the rows (or the refusal status) must agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from groupwire import Groupwire
from groupwire.api import create_app
from groupwire.auth import keys
from tests.api.list_filter_cases import CASES, GROUPS, World, build_world, names
from tests.medusa.harness import MedusaServer

pytestmark = pytest.mark.medusa


def _world(client: Any) -> World:

    def create_group(name: str) -> str:
        response = client.post(GROUPS, json={"name": name})
        assert response.status_code == 200, response.text
        return str(response.json()["customer_group"]["id"])

    def create_customer(body: dict[str, Any]) -> str:
        response = client.post("/admin/customers", json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["customer"]["id"])

    def add(group: str, customer: str) -> None:
        response = client.post(f"{GROUPS}/{group}/customers", json={"add": [customer]})
        assert response.status_code == 200, response.text

    def delete_customer(customer: str) -> None:
        assert client.delete(f"/admin/customers/{customer}").status_code == 200

    return build_world(create_group, create_customer, add, delete_customer)


@pytest.fixture
def groupwire_client(tmp_path: Path) -> Iterator[TestClient]:
    gw = Groupwire.open(f"sqlite:///{tmp_path / 'parity.db'}", load_entry_points=False)
    _, secret = keys.create_key(gw.engine, "parity", ["admin"])
    with TestClient(create_app(gw), headers={"Authorization": f"Bearer {secret}"}) as client:
        yield client
    gw.close()


def test_given_one_world_in_medusa_and_groupwire_when_filtering_lists_then_the_rows_agree(
    medusa: MedusaServer, groupwire_client: TestClient
) -> None:
    # Medusa's database holds the other tests' rows too: only this world's rows are compared
    medusa_world = _world(medusa.client)
    groupwire_world = _world(groupwire_client)
    differences = []
    for case in CASES:
        answers = []
        for client, world in ((medusa.client, medusa_world), (groupwire_client, groupwire_world)):
            response = client.get(f"{case.path}?{world.query(case)}&limit=1000")
            if response.status_code == 200:
                answers.append(names(case.path, response.json(), among=world.ids.values()))
            else:
                answers.append(response.status_code)
        if answers[0] != answers[1] or answers[0] != case.expected:
            differences.append(f"{case.id}: Medusa {answers[0]}, Groupwire {answers[1]}")
    assert not differences, "\n".join(differences)
