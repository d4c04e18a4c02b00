"""Medusa's tables that capture reads, without Medusa: for the tests of capture's set-up,
permissions, uninstall and slot states, which need Medusa's schema and a PostgreSQL server but
no running Medusa (and some of them a server of their own, see ``private_postgres``).

``CUSTOMER_TABLES`` is what the migrations of ``@medusajs/customer`` 2.21.2 leave (their
``up`` steps in order, as ``medusa db:migrate`` runs them): the same columns, types, keys and
foreign keys; the secondary indexes are left out (capture reads none of them). ``order`` and
``order_summary`` (``@medusajs/order``) are there with the columns capture reads, so that the
publication of ``slot.TABLES`` can be made.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from groupwire.medusa import slot as slots

CUSTOMER_TABLES = """
CREATE TABLE customer (
    id text NOT NULL PRIMARY KEY, company_name text, first_name text, last_name text,
    email text, phone text, has_account boolean NOT NULL DEFAULT false, metadata jsonb,
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz, created_by text
);
CREATE TABLE customer_address (
    id text NOT NULL PRIMARY KEY,
    customer_id text NOT NULL REFERENCES customer (id) ON UPDATE CASCADE ON DELETE CASCADE,
    address_name text, is_default_shipping boolean NOT NULL DEFAULT false,
    is_default_billing boolean NOT NULL DEFAULT false, company text, first_name text,
    last_name text, address_1 text, address_2 text, city text, country_code text, province text,
    postal_code text, phone text, metadata jsonb,
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE TABLE customer_group (
    id text NOT NULL PRIMARY KEY, name text NOT NULL, metadata jsonb, created_by text,
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE TABLE customer_group_customer (
    id text NOT NULL PRIMARY KEY,
    customer_id text NOT NULL REFERENCES customer (id) ON UPDATE CASCADE ON DELETE CASCADE,
    customer_group_id text NOT NULL
        REFERENCES customer_group (id) ON UPDATE CASCADE ON DELETE CASCADE,
    metadata jsonb, created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(), created_by text, deleted_at timestamptz
);
CREATE TABLE "order" (
    id text NOT NULL PRIMARY KEY, region_id text, customer_id text, version integer NOT NULL
    DEFAULT 1, sales_channel_id text, status text NOT NULL DEFAULT 'pending',
    is_draft_order boolean NOT NULL DEFAULT false, email text, currency_code text NOT NULL,
    metadata jsonb, canceled_at timestamptz, created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz
);
CREATE TABLE order_summary (
    id text NOT NULL PRIMARY KEY,
    order_id text NOT NULL REFERENCES "order" (id) ON UPDATE CASCADE ON DELETE CASCADE,
    version integer NOT NULL DEFAULT 1, totals jsonb,
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
"""


def with_database(url: str, database: str, user: str | None = None) -> str:
    """``url`` (libpq or SQLAlchemy spelling) pointed at another database (and user)."""
    params: dict[str, Any] = conninfo_to_dict(slots._libpq_url(url))
    user = user or params.get("user")
    host, port = params.get("host") or "127.0.0.1", params.get("port") or 5432
    return f"postgresql://{user + '@' if user else ''}{host}:{port}/{database}"


@dataclass
class MedusaTables:
    """A database holding Medusa's tables that capture reads, owned by the server's admin role."""

    database: str
    url: str
    """The owner's URL (a superuser on the test servers)."""

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with slots.connect(self.url) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []


def admin(server_url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(make_conninfo(slots._libpq_url(server_url)), autocommit=True)


@contextmanager
def medusa_tables(server_url: str) -> Iterator[MedusaTables]:
    """A database of its own on ``server_url``'s server with those tables; its slots and
    the database are dropped afterwards (on a fresh connection: the server may have been
    restarted meanwhile)."""
    database = f"gw_medusa_{uuid.uuid4().hex[:10]}"
    with admin(server_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    url = with_database(server_url, database)
    try:
        with slots.connect(url) as conn:
            conn.execute(CUSTOMER_TABLES)
        yield MedusaTables(database, url)
    finally:
        with admin(server_url) as conn:
            for (pid,) in conn.execute(
                "SELECT active_pid FROM pg_replication_slots"
                " WHERE database = %s AND active_pid IS NOT NULL",
                (database,),
            ).fetchall():
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            deadline = time.monotonic() + 30
            while (
                conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                    " WHERE database = %s AND NOT active",
                    (database,),
                ).fetchall()
                or conn.execute(
                    "SELECT 1 FROM pg_replication_slots WHERE database = %s", (database,)
                ).fetchone()
            ):
                if time.monotonic() > deadline:
                    raise AssertionError(f"the slots of {database} are still in use")
                time.sleep(0.05)
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )


@contextmanager
def capture_role(tables: MedusaTables) -> Iterator[str]:
    """The role the guide recommends for capture: ``LOGIN REPLICATION`` with ``SELECT`` on
    the tables capture reads (``slot.TABLES``), owning nothing. Yields its URL to the tables'
    database; dropped after."""
    role = f"gw_capture_{uuid.uuid4().hex[:10]}"
    name = sql.Identifier(role)
    with slots.connect(tables.url) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN REPLICATION").format(name))
        try:
            conn.execute(
                sql.SQL("GRANT SELECT ON {} TO {}").format(
                    sql.SQL(", ").join(sql.Identifier(t) for t in slots.TABLES), name
                )
            )
            yield with_database(tables.url, tables.database, user=role)
        finally:
            for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE usename = %s", (role,)
            ).fetchall():
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            conn.execute(sql.SQL("DROP OWNED BY {}").format(name))
            conn.execute(sql.SQL("DROP ROLE {}").format(name))
