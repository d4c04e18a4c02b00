"""List filters as Medusa 2.21.2 takes them, each answered as Medusa answers it.

The cases (tests/api/list_filter_cases.py) were each run against a real Medusa; here they
run on every backend, through the Admin API, on the same small world.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import assert_error
from tests.api.list_filter_cases import CASES, GROUPS, Case, World, build_world, names


@pytest.fixture
def world(client: Any) -> World:
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


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_given_the_world_when_listing_with_a_medusa_filter_then_medusas_rows_return(
    client: Any, world: World, case: Case
) -> None:
    response = client.get(f"{case.path}?{world.query(case)}")
    if isinstance(case.expected, int):
        assert_error(response, case.expected, "invalid_data")
    else:
        assert response.status_code == 200, response.text
        assert names(case.path, response.json()) == case.expected
        assert response.json()["count"] == len(case.expected)
