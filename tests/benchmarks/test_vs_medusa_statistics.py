"""``vs_medusa.py`` measures databases with planner statistics, as a live store has them.

Its customers are written straight into each database (Medusa's ``customer`` table, and
Groupwire's for Groupwire and the floor): a table never analysed is planned from guesses, and
a read of 1,000 members then measured the plan rather than the stack (50 ms instead of 11 ms
on the floor). Checked here on PostgreSQL with a table of Medusa's shape and one of
Groupwire's schema; Medusa itself is not needed for the seeding.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import POSTGRES_URL

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import vs_medusa

POSTGRES = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")


def reltuples(database_url: str, table: str) -> float:
    """The planner's row estimate: -1 for a table never analysed (PostgreSQL 14+)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT reltuples FROM pg_class WHERE relname = %s", (table,)).fetchone()
    assert row is not None
    return float(row[0])


@pytest.fixture
def medusa_shaped_database() -> Iterator[str]:
    name = f"gw_vs_medusa_stats_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{POSTGRES.rsplit('/', 1)[0]}/{name}"
    try:
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE customer (id text PRIMARY KEY, email text)")
        yield url
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_given_customers_seeded_into_medusas_table_then_it_is_analysed(
    medusa_shaped_database: str,
) -> None:
    with httpx.Client() as unused:
        target = vs_medusa.Target(
            "medusa",
            unused,
            vs_medusa.seed_medusa(medusa_shaped_database),
            "cus_bench",
            medusa_shaped_database,
        )
        target.customers(500)

    assert reltuples(medusa_shaped_database, "customer") == 500


def test_given_customers_seeded_into_groupwires_schema_then_it_is_analysed() -> None:
    with (
        vs_medusa.groupwire_database(POSTGRES, "stats") as (database_url, _),
        httpx.Client() as unused,
    ):
        target = vs_medusa.Target(
            "groupwire", unused, vs_medusa.seed_groupwire(database_url), "cus_bench", database_url
        )
        target.customers(500)

        assert reltuples(database_url, "customer") == 500
