"""The publication capture reads: made on every table of ``slot.TABLES``; one made before
capture read orders gains ``order`` and ``order_summary`` when the role may add them, and
otherwise capture says what the tables' owner must run, changing nothing.

On the test PostgreSQL server, in a schema of its own holding tables named as Medusa's (their
columns do not matter to a publication)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from groupwire.medusa import slot as slots
from tests.conftest import POSTGRES_URL

OLD_TABLES = ("customer_group", "customer_group_customer", "customer", "customer_address")


@pytest.fixture
def medusa_schema() -> Iterator[tuple[psycopg.Connection[Any], str, str]]:
    """(a connection of the tables' owner, the schema, a publication name not yet used)."""
    suffix = uuid.uuid4().hex[:10]
    schema, publication = f"gw_pub_{suffix}", f"gw_test_pub_{suffix}"
    with slots.connect(POSTGRES_URL) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            for table in slots.TABLES:
                conn.execute(f'CREATE TABLE {schema}."{table}" (id text PRIMARY KEY)')
            yield conn, schema, publication
        finally:
            conn.execute("RESET ROLE")
            conn.execute(f"DROP PUBLICATION IF EXISTS {publication}")
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def published(conn: psycopg.Connection[Any], publication: str) -> set[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_publication_tables WHERE pubname = %s", (publication,)
    ).fetchall()
    return {row[0] for row in rows}


def old_publication(conn: psycopg.Connection[Any], schema: str, publication: str) -> None:
    tables = ", ".join(f"{schema}.{table}" for table in OLD_TABLES)
    conn.execute(f"CREATE PUBLICATION {publication} FOR TABLE {tables}")


def test_given_no_publication_then_it_is_made_on_every_captured_table(medusa_schema) -> None:
    conn, schema, publication = medusa_schema

    assert slots.ensure_publication(conn, publication, schema) is None

    assert published(conn, publication) == set(slots.TABLES)
    assert {"order", "order_summary"} <= set(slots.TABLES)


def test_given_a_publication_without_the_order_tables_then_the_owner_adds_them(
    medusa_schema,
) -> None:
    conn, schema, publication = medusa_schema
    old_publication(conn, schema, publication)

    assert slots.ensure_publication(conn, publication, schema) == ("order", "order_summary")
    assert published(conn, publication) == set(slots.TABLES)
    assert slots.ensure_publication(conn, publication, schema) == ()  # nothing more to add


def test_given_a_role_that_may_not_add_them_then_the_error_gives_the_owners_command(
    medusa_schema,
) -> None:
    conn, schema, publication = medusa_schema
    old_publication(conn, schema, publication)
    role = f"gw_test_role_{uuid.uuid4().hex[:10]}"
    conn.execute(f"CREATE ROLE {role} NOLOGIN")
    try:
        conn.execute(f"SET ROLE {role}")
        with pytest.raises(slots.PublicationDenied) as refused:
            slots.ensure_publication(conn, publication, schema)
        conn.execute("RESET ROLE")
    finally:
        conn.execute("RESET ROLE")
        conn.execute(f"DROP ROLE {role}")

    tables = f'"{schema}"."order", "{schema}"."order_summary"'
    command = f'ALTER PUBLICATION "{publication}" ADD TABLE {tables}'
    assert f"`{command}`" in str(refused.value)
    assert published(conn, publication) == set(OLD_TABLES)  # nothing changed
    conn.execute(command)  # and the command given works, as the owner
    assert published(conn, publication) == set(slots.TABLES)
