"""The pgoutput decoder, on bytes a PostgreSQL 15 slot really produced.

Captured from ``pg_logical_slot_peek_binary_changes(..., 'proto_version', '1', ...)`` on a
table ``customer_group (id text primary key, name text, metadata jsonb, created_at
timestamptz, deleted_at timestamptz)``: one transaction inserting a row with 16 kB of
incompressible metadata (stored out of line, TOASTed), one updating its name then deleting it.
No Medusa needed: these tests run everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from groupwire.medusa import pgoutput
from groupwire.medusa.decoding import TransactionDecoder
from groupwire.medusa.rows import typed

BEGIN = bytes.fromhex("4200000000b51ed2780003047003491e7900059e41")
RELATION = bytes.fromhex(
    "52000dbc237075626c696300637573746f6d65725f67726f7570006400050169640000000019ffffffff00"
    "6e616d650000000019ffffffff006d657461646174610000000edaffffffff00637265617465645f617400"
    "000004a0ffffffff0064656c657465645f617400000004a0ffffffff"
)
COMMIT = bytes.fromhex("430000000000b51ed27800000000b51ed2a80003047003491e79")
BEGIN_2 = bytes.fromhex("4200000000b51ed5880003047003492c6a00059e42")
UPDATE_TOASTED_UNCHANGED = bytes.fromhex(
    "55000dbc234e00057400000002673174000000045649502b75740000001a323032362d30312d30322030"
    "333a30343a30352e3637382b30306e"
)
DELETE_BY_KEY = bytes.fromhex("44000dbc234b0005740000000267316e6e6e6e")
COMMIT_2 = bytes.fromhex("430000000000b51ed58800000000b51ed5b80003047003492c6a")


def insert_message(metadata: str) -> bytes:
    """The insert as captured, its 16 kB metadata value replaced by ``metadata``."""
    head = bytes.fromhex("49000dbc234e0005740000000267317400000003564950")
    value = metadata.encode()
    tail = bytes.fromhex("740000001a") + b"2026-01-02 03:04:05.678+00" + b"n"
    return head + b"t" + len(value).to_bytes(4, "big") + value + tail


def test_given_a_begin_and_its_commit_then_lsns_xid_and_time_are_read() -> None:
    begin = pgoutput.decode(BEGIN)
    commit = pgoutput.decode(COMMIT)

    assert isinstance(begin, pgoutput.Begin) and isinstance(commit, pgoutput.Commit)
    assert begin.xid == 0x59E41
    assert begin.final_lsn == commit.commit_lsn == 0xB51ED278
    assert commit.end_lsn == 0xB51ED2A8
    assert begin.commit_time == commit.commit_time
    assert begin.commit_time.tzinfo is UTC and begin.commit_time.year >= 2024


def test_given_a_relation_message_then_columns_types_and_key_are_read() -> None:
    relation = pgoutput.decode(RELATION)

    assert isinstance(relation, pgoutput.Relation)
    assert (relation.namespace, relation.name, relation.replica_identity) == (
        "public",
        "customer_group",
        "d",
    )
    assert [(c.name, c.type_oid, c.part_of_key) for c in relation.columns] == [
        ("id", 25, True),
        ("name", 25, False),
        ("metadata", 3802, False),
        ("created_at", 1184, False),
        ("deleted_at", 1184, False),
    ]


def test_given_an_update_leaving_a_toasted_value_then_it_is_unchanged_not_null() -> None:
    update = pgoutput.decode(UPDATE_TOASTED_UNCHANGED)

    assert isinstance(update, pgoutput.Update)
    assert update.old is None and update.key is None
    assert update.new == ("g1", "VIP+", pgoutput.UNCHANGED, "2026-01-02 03:04:05.678+00", None)


def test_given_a_delete_under_the_default_replica_identity_then_only_the_key_is_there() -> None:
    delete = pgoutput.decode(DELETE_BY_KEY)

    assert isinstance(delete, pgoutput.Delete)
    assert delete.old is None
    assert delete.key == ("g1", None, None, None, None)


def test_given_captured_messages_then_the_decoder_yields_whole_typed_transactions() -> None:
    messages = [
        BEGIN,
        RELATION,
        insert_message('{"tier": "gold"}'),
        COMMIT,
        BEGIN_2,
        RELATION,
        UPDATE_TOASTED_UNCHANGED,
        DELETE_BY_KEY,
        COMMIT_2,
    ]

    first, second = TransactionDecoder().transactions((0, 0, m) for m in messages)

    assert (first.xid, first.end_lsn) == (0x59E41, 0xB51ED2A8)
    assert [(c.operation, c.row) for c in first.changes] == [
        (
            "insert",
            {
                "id": "g1",
                "name": "VIP",
                "metadata": {"tier": "gold"},
                "created_at": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
                "deleted_at": None,
            },
        )
    ]
    assert [(c.operation, c.row["id"], c.row["name"]) for c in second.changes] == [
        ("update", "g1", "VIP+"),
        ("delete", "g1", None),
    ]
    assert second.changes[0].row["metadata"] is pgoutput.UNCHANGED
    assert second.end_lsn == 0xB51ED5B8 > first.end_lsn


def test_given_changes_of_another_table_then_the_decoder_leaves_them_out() -> None:
    other = RELATION.replace(b"customer_group\x00", b"order_item_xyz\x00")

    [transaction] = TransactionDecoder().transactions(
        (0, 0, m) for m in (BEGIN, other, insert_message("{}"), COMMIT)
    )

    assert transaction.changes == []


def test_given_typed_values_then_psycopgs_loaders_read_the_servers_text() -> None:
    relation = pgoutput.decode(RELATION)
    assert isinstance(relation, pgoutput.Relation)

    row = typed(relation, ("g1", None, '{"a": [1, 2.5, null]}', "2026-01-02 03:04:05+00", None))

    assert row == {
        "id": "g1",
        "name": None,
        "metadata": {"a": [1, 2.5, None]},
        "created_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "deleted_at": None,
    }


@pytest.mark.parametrize(
    "data",
    [
        COMMIT[:-3],
        RELATION[:20],
        b"Z\x00",
        DELETE_BY_KEY[:7] + b"X",
        UPDATE_TOASTED_UNCHANGED + b"!",
    ],
    ids=["cut-commit", "cut-relation", "unknown-type", "bad-delete-marker", "trailing-bytes"],
)
def test_given_bytes_that_are_no_pgoutput_message_then_decode_error(data: bytes) -> None:
    with pytest.raises(pgoutput.DecodeError):
        pgoutput.decode(data)


def test_given_a_stream_ending_inside_a_transaction_then_decode_error() -> None:
    with pytest.raises(pgoutput.DecodeError):
        list(TransactionDecoder().transactions((0, 0, m) for m in (BEGIN, RELATION)))
