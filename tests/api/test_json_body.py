"""The Admin API's encoder writes what the standard library would, timestamps as ``iso``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from groupwire.api.json_body import encode
from groupwire.api.render import iso

moments = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(moments)
def test_given_a_utc_timestamp_then_it_is_written_as_iso_writes_it(moment):
    assert encode({"at": moment}) == json.dumps({"at": iso(moment)}).replace(" ", "").encode()


@given(moments)
def test_given_a_naive_timestamp_then_it_is_taken_as_utc(moment):
    naive = moment.replace(tzinfo=None)
    assert encode([naive]) == encode([moment])


def test_given_a_value_orjson_cannot_encode_then_the_fallback_writes_the_same_timestamps():
    moment = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    content = {"big": 2**70, "at": moment, "naive": moment.replace(tzinfo=None), "n": "é"}
    expected = '{"big":1180591620717411303424,"at":"2026-01-02T03:04:05.000006Z",'
    expected += '"naive":"2026-01-02T03:04:05.000006Z","n":"é"}'
    assert encode(content) == expected.encode()


def test_given_an_offset_timestamp_then_its_offset_is_kept_as_isoformat_does():
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert encode(moment) == f'"{moment.isoformat()}"'.encode()
    assert encode([moment, 2**70]) == f'["{moment.isoformat()}",{2**70}]'.encode()
