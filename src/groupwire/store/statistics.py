"""Planner statistics, refreshed at once after a bulk load instead of whenever the server gets
to it.

PostgreSQL plans from the statistics ``ANALYZE`` gathers; autovacuum gathers them on its own,
but only on its next round (``autovacuum_naptime``, a minute by default). Until then a table
filled by one large transaction is planned as if it were still empty, and a statement joining
it may pick a plan that reads all of it for every few rows (seen after capture's initial
import: the membership ``INSERT`` guarded by live customers took 140-190 ms per 2,000 rows
instead of 33 ms). ``ANALYZE`` reads a bounded sample of each table (300 x
``default_statistics_target`` rows), so it costs little however large the tables are.

SQLite is left alone. Its planner uses ``sqlite_stat1`` when there is one, but nothing ever
refreshes that table on its own: figures taken once, after an import of a few rows, would
keep describing tables that have grown a thousandfold since. Without them SQLite assumes
selective indexes, which is what these tables' lookups need.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import Engine, Table
from sqlalchemy.exc import DBAPIError

from groupwire.store.engine import describe

log = logging.getLogger("groupwire.store")


def refresh_statistics(engine: Engine, tables: Sequence[Table]) -> bool:
    """Gather the planner statistics of ``tables`` now (PostgreSQL's ``ANALYZE``); returns
    whether it did.

    Meant for right after a transaction that wrote many rows into young tables. Statistics
    only steer plans, so a failure is logged and not raised: autovacuum gathers them later.
    """
    if engine.dialect.name != "postgresql" or not tables:
        return False
    preparer = engine.dialect.identifier_preparer
    names = ", ".join(preparer.format_table(table) for table in tables)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ANALYZE {names}")
    except DBAPIError as error:
        log.warning("could not refresh the statistics of %s: %s", names, describe(error))
        return False
    return True


__all__ = ["refresh_statistics"]
