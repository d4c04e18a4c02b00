"""Metadata comes back exactly as written: JSON values are read without loss on both stores
(PostgreSQL's json values go through Groupwire's own loader, ``store.engine.load_json``)."""

from __future__ import annotations

from groupwire.store.engine import load_json

EXACT = {
    "big": 123456789012345678901234567890,
    "negative": -(2**70),
    "float": 0.1,
    "text": "élan ✓ 顧客",
    "nested": {"list": [1, None, True, False, "x"], "empty": {}},
}


def test_metadata_round_trips_exactly_and_absent_metadata_reads_as_none(gw):
    kept = gw.groups.create(name="Exact", metadata=EXACT)
    bare = gw.groups.create(name="Bare")
    customer = gw.customers.create(email="a@shop.test", metadata={"n": 2**65})

    assert gw.groups.get(kept.id).metadata == EXACT
    assert gw.groups.get(bare.id).metadata is None
    assert gw.customers.get(customer.id).metadata == {"n": 2**65}
    listed = {group.name: group.metadata for group in gw.groups.list(limit=10).items}
    assert listed == {"Exact": EXACT, "Bare": None}


def test_the_loader_reads_json_null_and_utf8_text():
    assert load_json(b"null") is None
    assert load_json('{"a": [1, 2]}') == {"a": [1, 2]}
    assert load_json('"é"'.encode()) == "é"
    assert load_json(b"123456789012345678901234567890") == 123456789012345678901234567890
