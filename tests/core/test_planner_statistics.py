"""Planner statistics after a bulk load: gathered at once on PostgreSQL, left alone on SQLite.

PostgreSQL plans a statement from the statistics of the tables it reads; autovacuum gathers
them only on its next round, up to a minute after a large load, and until then a freshly
filled table is planned as if it were empty. ``refresh_statistics`` gathers them right away
(``ANALYZE``, whose runs ``pg_stat_user_tables.last_analyze`` records; autovacuum's go to
``last_autoanalyze``). SQLite's figures, once written, would never be refreshed, so it gets
none.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, create_engine, text

from groupwire import Groupwire
from groupwire.store import tables
from groupwire.store.statistics import refresh_statistics
from tests.conftest import POSTGRES_URL

LOADED = (tables.customer_group, tables.customer, tables.membership)


def load_members(gw: Groupwire, count: int) -> None:
    group = gw.groups.create(name="Loaded")
    customers = [gw.customers.create(email=f"member{i}@shop.test") for i in range(count)]
    gw.groups.add_customers(group.id, [c.id for c in customers])


def analysed(engine: Engine, schema_of: str | None = None) -> dict[str, tuple[Any, float]]:
    """``{table: (last_analyze, reltuples)}`` for the tables of the store's schema."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT s.relname, s.last_analyze, c.reltuples FROM pg_stat_user_tables s"
                " JOIN pg_class c ON c.oid = s.relid"
                " WHERE s.schemaname = coalesce(:schema, current_schema())"
            ),
            {"schema": schema_of},
        )
        return {name: (at, reltuples) for name, at, reltuples in rows}


def names(loaded: Sequence[Any]) -> list[str]:
    return [table.name for table in loaded]


@pytest.mark.postgres_only
def test_given_freshly_loaded_tables_when_refreshed_then_postgresql_knows_their_rows(
    gw: Groupwire, backend: str
) -> None:
    load_members(gw, 60)
    before = analysed(gw.service.engine)
    assert [before[name][0] for name in names(LOADED)] == [None, None, None]

    assert refresh_statistics(gw.service.engine, LOADED) is True

    after = analysed(gw.service.engine)
    assert all(after[name][0] is not None for name in names(LOADED))
    assert {name: after[name][1] for name in names(LOADED)} == {
        "customer_group": 1,
        "customer": 60,
        "customer_group_customer": 60,
    }
    assert after["event"][0] is None  # only the tables asked for


@pytest.mark.postgres_only
def test_given_tables_of_a_named_schema_when_refreshed_then_their_names_are_qualified(
    gw: Groupwire, backend: str
) -> None:
    load_members(gw, 3)
    with gw.service.engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    qualified = tables.customer.to_metadata(MetaData(), schema=schema)
    elsewhere = create_engine(POSTGRES_URL)  # its search_path does not name the schema
    try:
        assert refresh_statistics(elsewhere, [qualified]) is True
    finally:
        elsewhere.dispose()

    last_analyze, reltuples = analysed(gw.service.engine, schema)["customer"]
    assert last_analyze is not None
    assert reltuples == 3


def test_given_a_sqlite_store_when_refreshed_then_no_statistics_are_written(
    tmp_path: Path,
) -> None:
    gw = Groupwire.open(f"sqlite:///{tmp_path / 'store.db'}", load_entry_points=False, plugins=[])
    try:
        load_members(gw, 3)

        assert refresh_statistics(gw.service.engine, LOADED) is False

        with gw.service.engine.connect() as conn:
            written = conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE name LIKE 'sqlite_stat%'"
            ).all()
        assert written == []
    finally:
        gw.close()
