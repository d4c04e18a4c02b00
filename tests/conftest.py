"""Shared fixtures: every store-backed test runs on SQLite and on PostgreSQL.

PostgreSQL is the server at ``GROUPWIRE_TEST_POSTGRES_URL`` (default: the local ``test``
database); each test gets a schema of its own, dropped afterwards. When the server cannot be
reached the PostgreSQL tests FAIL: they never skip silently. To run SQLite only, say so:
``GROUPWIRE_TEST_BACKENDS=sqlite``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text

from groupwire import Groupwire

POSTGRES_URL = os.environ.get(
    "GROUPWIRE_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test"
)
BACKENDS = [
    b.strip() for b in os.environ.get("GROUPWIRE_TEST_BACKENDS", "sqlite,postgresql").split(",")
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        wanted = BACKENDS
        if metafunc.definition.get_closest_marker("postgres_only"):
            wanted = [b for b in BACKENDS if b == "postgresql"]
        metafunc.parametrize("backend", wanted)


class PostgresSchemas:
    """Creates throw-away schemas in the test database."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=2)
        try:
            with self.engine.connect() as conn:
                conn.execute(text("select 1"))
        except Exception as error:  # fail loudly: a PostgreSQL test must not pass unseen
            pytest.fail(f"PostgreSQL is required by these tests and unreachable at {url}: {error}")

    def create(self) -> tuple[str, str]:
        schema = f"gw_{uuid.uuid4().hex[:12]}"
        with self.engine.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        separator = "&" if "?" in POSTGRES_URL else "?"
        return schema, f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"

    def drop(self, schema: str) -> None:
        with self.engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))

    @contextmanager
    def fresh(self) -> Iterator[str]:
        """A URL of a schema created for the block and dropped after it."""
        schema, url = self.create()
        try:
            yield url
        finally:
            self.drop(schema)


@pytest.fixture(scope="session")
def postgres_schemas() -> Iterator[PostgresSchemas]:
    schemas = PostgresSchemas(POSTGRES_URL)
    yield schemas
    schemas.engine.dispose()


@pytest.fixture
def database_url(backend: str, tmp_path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database of the given backend, as a URL."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'groupwire.db'}"
        return
    schemas: PostgresSchemas = request.getfixturevalue("postgres_schemas")
    with schemas.fresh() as url:
        yield url


@pytest.fixture
def gw(database_url: str) -> Iterator[Groupwire]:
    """A migrated Groupwire on a fresh database, no plugins from entry points, fast retries."""
    instance = Groupwire.open(
        database_url,
        load_entry_points=False,
        plugins=[],
        delivery_retry_base=0.001,
        delivery_retry_max=0.01,
        relay_poll_interval=0.05,
    )
    yield instance
    instance.close()
