"""The membership map's bulk rows keep every value as given, whichever way they reach the
database (COPY text joined at once, COPY row by row, executemany)."""

from __future__ import annotations

from sqlalchemy import select

from groupwire import Groupwire
from groupwire.medusa.tables import medusa_membership
from groupwire.store import bulk


def test_bulk_rows_keep_values_that_need_escaping_in_copy(gw: Groupwire) -> None:
    # given rows enough for COPY on PostgreSQL, some holding COPY's special characters
    awkward = ["tab\there", "back\\slash", "new\nline", "cr\rhere", "\\N", "plain"]
    rows = [(f"row{n}", awkward[n % len(awkward)], f"cus_{n}") for n in range(300)]
    # when inserted in bulk
    with gw.service.engine.begin() as conn:
        bulk.insert_rows(conn, medusa_membership, ("id", "customer_group_id", "customer_id"), rows)
    # then each reads back exactly as given
    with gw.service.engine.connect() as conn:
        stored = set(conn.execute(select(medusa_membership)).tuples())
    assert stored == set(rows)


def test_bulk_rows_of_plain_ids_take_the_fast_path_and_read_back(gw: Groupwire) -> None:
    rows = [(f"row{n}", f"cusgroup_{n % 3}", f"cus_{n}") for n in range(300)]
    assert bulk._copy_text(rows) is not None  # the joined COPY text, not a write per row
    with gw.service.engine.begin() as conn:
        bulk.insert_rows(conn, medusa_membership, ("id", "customer_group_id", "customer_id"), rows)
    with gw.service.engine.connect() as conn:
        stored = set(conn.execute(select(medusa_membership)).tuples())
    assert stored == set(rows)
