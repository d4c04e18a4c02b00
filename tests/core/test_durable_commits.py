"""Durable external changes: committed to disk before the caller confirms them elsewhere.

A store may commit lazily: SQLite in WAL mode runs with ``synchronous=NORMAL`` (a commit
reaches the disk at the next checkpoint), and a PostgreSQL server may run with
``synchronous_commit=off``. A power loss may then take back the last commits, harmless for
a change its client can send again, not for one read from another system's replication
stream: capture confirms the position to the slot right after the commit, and the slot never
sends that change again. ``durable=True`` makes such a transaction sync at its commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from groupwire import Groupwire
from groupwire.store.unit_of_work import UnitOfWork


@pytest.fixture
def lax_gw(database_url: str) -> Iterator[Groupwire]:
    """A Groupwire whose store commits lazily: SQLite's default here, and a PostgreSQL session
    told ``synchronous_commit=off``."""
    url = database_url
    if url.startswith("postgresql"):
        url += "%20-csynchronous_commit%3Doff"
    instance = Groupwire.open(url, load_entry_points=False, plugins=[])
    yield instance
    instance.close()


def commit_mode(uow: UnitOfWork) -> str:
    """How the transaction of ``uow`` will commit: "synced" or "lazy"."""
    conn = uow.connection
    if conn.dialect.name == "sqlite":
        level = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        return {2: "synced", 3: "synced", 1: "lazy", 0: "lazy"}[level]
    setting = conn.execute(text("SHOW synchronous_commit")).scalar()
    return "lazy" if setting == "off" else "synced"


def external_mode(gw: Groupwire, *, durable: bool) -> str:
    def work(uow: UnitOfWork) -> tuple[str, list[Any]]:
        return commit_mode(uow), []

    return gw.service.apply_external_change(work, durable=durable)


def test_given_a_lazy_store_when_an_external_change_is_durable_then_it_commits_synced(
    lax_gw: Groupwire,
) -> None:
    assert external_mode(lax_gw, durable=False) == "lazy"  # the store's own setting

    assert external_mode(lax_gw, durable=True) == "synced"


def test_given_a_durable_change_when_the_next_change_is_not_then_the_store_setting_is_back(
    lax_gw: Groupwire,
) -> None:
    external_mode(lax_gw, durable=True)

    assert external_mode(lax_gw, durable=False) == "lazy"
    # an ordinary operation on the same pooled connection commits as the store does
    lax_gw.groups.create("After a durable change")
    assert external_mode(lax_gw, durable=False) == "lazy"


def test_given_a_change_written_in_pieces_when_durable_then_it_commits_synced(
    lax_gw: Groupwire,
) -> None:
    change = lax_gw.service.begin_external_change(durable=True)
    try:
        assert commit_mode(change.uow) == "synced"
    finally:
        change.rollback()
    lazy = lax_gw.service.begin_external_change()
    try:
        assert commit_mode(lazy.uow) == "lazy"
    finally:
        lazy.rollback()
