"""Bring a database's schema up to date with Alembic, from code or from the CLI.

On SQLite, foreign keys are switched off while migrations run, as SQLite's own procedure for
schema changes asks: a column SQLite cannot alter in place is changed by rebuilding its table
(Alembic's batch mode), and dropping the old table with foreign keys on would cascade to every
row that references it (a customer's memberships). The references are checked before commit
(``PRAGMA foreign_key_check``), so a migration cannot leave one dangling.

Processes that start together on the same database (an API server and its workers) would
otherwise all find the schema missing and all create it: each migration first takes a lock
that lasts until it commits (PostgreSQL: a transaction-level advisory lock for the schema;
SQLite: ``BEGIN IMMEDIATE``, the database's write lock), so the others wait, then find the
schema at the head revision and do nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

from groupwire.store.engine import WRITE

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Apply every migration not yet applied (idempotent; safe to call at each start)."""
    _run(engine, lambda config: command.upgrade(config, revision))


def downgrade(engine: Engine, revision: str) -> None:
    """Undo migrations down to ``revision``; a migration may refuse when data would be lost."""
    _run(engine, lambda config: command.downgrade(config, revision))


def _run(engine: Engine, step: Callable[[Config], None]) -> None:
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            _sqlite_foreign_keys(conn, on=False)
        try:
            conn = conn.execution_options(**{WRITE: True})  # SQLite: BEGIN IMMEDIATE
            with conn.begin():
                if not sqlite:
                    conn.exec_driver_sql(
                        "SELECT pg_advisory_xact_lock(hashtext('groupwire.migrate'),"
                        " hashtext(current_schema()))"
                    )
                config = alembic_config()
                config.attributes["connection"] = conn
                step(config)
                if sqlite:
                    _check_references(conn)
        finally:
            if sqlite:
                _sqlite_foreign_keys(conn, on=True)


def _sqlite_foreign_keys(conn: Connection, *, on: bool) -> None:
    """SQLite ignores this pragma inside a transaction: set it on the driver's connection,
    which runs in autocommit mode between our explicit BEGINs (see store.engine)."""
    conn.connection.driver_connection.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")  # type: ignore[union-attr]


def _check_references(conn: Connection) -> None:
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        raise RuntimeError(f"the migration left {len(broken)} dangling references: {broken[:5]}")
