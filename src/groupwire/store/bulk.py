"""Bulk inserts at driver speed: one ``executemany`` of plain tuples, no per-row ORM or
SQLAlchemy type processing. Used for the rows a bulk change writes by the thousand
(memberships and their events); values are converted here exactly as the column types would.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, Table
from sqlalchemy.engine import Connection

SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"
# From this many rows on, PostgreSQL gets them through COPY, several times faster than
# executemany (which sends one protocol message per row from Python).
COPY_THRESHOLD = 200


def insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert tuples (in ``columns`` order) into ``table`` with one driver ``executemany``."""
    if not rows:
        return
    postgres = conn.dialect.name == "postgresql"
    if postgres and len(rows) >= COPY_THRESHOLD:
        _copy_rows(conn, table, columns, rows)
        return
    conn.exec_driver_sql(_insert_statement(table, tuple(columns), postgres), list(rows))


@lru_cache(maxsize=64)
def _insert_statement(table: Table, columns: tuple[str, ...], postgres: bool) -> str:
    """The driver's INSERT text (built once: single-row changes use it thousands of times)."""
    placeholders = []
    for name in columns:
        column = table.c[name]
        marker = "%s" if postgres else "?"
        if postgres and isinstance(column.type, JSON):
            marker = "CAST(%s AS JSONB)"
        placeholders.append(marker)
    quoted = ", ".join(f'"{name}"' for name in columns)
    return f'INSERT INTO "{table.name}" ({quoted}) VALUES ({", ".join(placeholders)})'


def _copy_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """``COPY ... FROM STDIN`` on the connection's own transaction (psycopg 3)."""
    quoted = ", ".join(f'"{name}"' for name in columns)
    driver = conn.connection.driver_connection
    assert driver is not None
    statement = f'COPY "{table.name}" ({quoted}) FROM STDIN'
    text = _copy_text(rows)
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        if text is not None:
            copy.write(text)
        else:
            for row in rows:
                copy.write_row(row)


def _copy_text(rows: Sequence[Sequence[Any]]) -> str | None:
    """The rows in COPY's text format when every value is NULL or a string that needs no
    escape (ids, mostly: one join in C instead of a ``write_row`` per row), else None."""
    values = [value for row in rows for value in row if value is not None]
    if not all(type(value) is str for value in values):
        return None
    probe = "".join(values)
    if "\\" in probe or "\t" in probe or "\n" in probe or "\r" in probe:
        return None
    lines = ("\t".join("\\N" if value is None else value for value in row) for row in rows)
    return "\n".join(lines) + "\n"


def timestamp(conn: Connection, moment: datetime) -> Any:
    """A UTC timestamp as the driver stores it for ``UTCDateTime`` columns."""
    moment = moment.astimezone(UTC)
    if conn.dialect.name == "sqlite":
        return moment.replace(tzinfo=None).strftime(SQLITE_DATETIME)
    return moment
