"""No request, however malformed, gets a 500: schemathesis over the app's own OpenAPI document.

Every operation is fuzzed in positive mode (valid per the schema) and negative mode (violating
it), with random ids and with ids that exist, authenticated with an admin key, in-process over
the ASGI transport on SQLite. Every 4xx must also be a Medusa-shaped error. The live stream is
left out: a valid request to it never ends (its errors are pinned down in test_events_api).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from groupwire import Groupwire
from groupwire.api import create_app
from groupwire.auth import keys

EXAMPLES_PER_OPERATION_AND_MODE = 12
STREAM = "/admin/events/stream"


@pytest.fixture
def sqlite_gw(tmp_path) -> Iterator[Groupwire]:
    instance = Groupwire.open(f"sqlite:///{tmp_path / 'fuzz.db'}", load_entry_points=False)
    yield instance
    instance.close()


def check(response: Any, label: str) -> None:
    assert response.status_code < 500, f"{label}: {response.status_code} {response.content!r}"
    if response.status_code >= 400:
        body = json.loads(response.content)
        assert isinstance(body.get("type"), str) and isinstance(body.get("message"), str), (
            f"{label}: error not in Medusa's shape: {body!r}"
        )


def fuzz(strategy: Any, label: str) -> int:
    """Send up to EXAMPLES_PER_OPERATION_AND_MODE generated requests; returns how many."""
    sent = 0

    @settings(
        max_examples=EXAMPLES_PER_OPERATION_AND_MODE,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def send(case: Any) -> None:
        nonlocal sent
        sent += 1
        check(case.call(), label)

    try:
        send()
    except Unsatisfiable:  # negative mode, and nothing in this operation's schema can be violated
        assert sent == 0
    return sent


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_given_any_generated_request_then_no_operation_answers_500(sqlite_gw: Groupwire):
    _, secret = keys.create_key(sqlite_gw.engine, "fuzz", ["admin"])
    group = sqlite_gw.groups.create("Existing", metadata={"a": 1})
    customer = sqlite_gw.customers.create("existing@example.com")
    sqlite_gw.groups.add_customers(group.id, [customer.id])
    address = sqlite_gw.customers.addresses.create(customer.id, city="Paris")
    app = create_app(sqlite_gw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    auth = {"Authorization": f"Bearer {secret}"}
    operations = [
        result.ok() for result in schema.get_all_operations() if result.ok().path != STREAM
    ]
    assert len(operations) >= 16
    examples = 0

    for operation in operations:
        variants: list[dict[str, Any]] = [{}]
        if operation.path.startswith("/admin/customer-groups/{id}"):
            variants.append({"path_parameters": {"id": group.id}})
        elif "{address_id}" in operation.path:
            variants.append({"path_parameters": {"id": customer.id, "address_id": address.id}})
        elif operation.path.startswith("/admin/customers/{id}"):
            variants.append({"path_parameters": {"id": customer.id}})
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for fixed in variants:
                strategy = operation.as_strategy(generation_mode=mode, headers=auth, **fixed)
                label = f"{operation.method.upper()} {operation.path} ({mode.value})"
                examples += fuzz(strategy, label)
    assert examples >= 300
