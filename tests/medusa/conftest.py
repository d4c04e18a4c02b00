"""The ``medusa`` fixture: one real Medusa 2.21.2 shared by every test under tests/medusa.

It is package-scoped: set up once for this package (and its sub-packages), and stopped as soon
as their last test is done, so that it does not idle through the rest of the suite.

It needs node/npm, redis-server and PostgreSQL, and FAILS (never skips) when one is missing.
Deselect these tests locally with ``-m "not medusa"``; they run by default and in CI.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import PostgresSchemas
from tests.medusa.capturing import Captured, capturing
from tests.medusa.harness import MedusaHarnessError, MedusaServer, running_medusa

TIMINGS = pytest.StashKey[dict[str, float]]()


@pytest.fixture(scope="package")
def medusa(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[MedusaServer]:
    """A running Medusa (own database, own Redis, admin key), stopped after the session."""
    try:
        with running_medusa(tmp_path_factory.mktemp("medusa")) as server:
            request.config.stash[TIMINGS] = server.timings
            yield server
    except MedusaHarnessError as error:
        pytest.fail(f"the Medusa harness could not start: {error}", pytrace=False)


@pytest.fixture
def store_url(postgres_schemas: PostgresSchemas) -> Iterator[str]:
    with postgres_schemas.fresh() as url:
        yield url


@pytest.fixture
def captured(medusa: MedusaServer, store_url: str) -> Iterator[Captured]:
    with capturing(medusa, store_url) as value:
        yield value


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Where the harness's time went (install, migrate, start, teardown), for CI logs."""
    timings = config.stash.get(TIMINGS, None)
    if timings:
        steps = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in timings.items())
        terminalreporter.write_line(f"medusa harness: {steps}")
