"""Reading a pasted block of email addresses (no database needed)."""

from __future__ import annotations

import pytest

from groupwire.domain.errors import InvalidData
from groupwire.ui.paste import MAX_EMAILS, parse_emails


def test_addresses_are_split_on_lines_commas_semicolons_and_spaces_and_deduplicated() -> None:
    pasted = parse_emails("a@x.com, B@X.com;c@x.com\r\n d@x.com e@x.com\n\na@x.com")

    assert pasted.emails == ["a@x.com", "b@x.com", "c@x.com", "d@x.com", "e@x.com"]
    assert pasted.invalid == []


def test_display_names_are_ignored_and_quoted_addresses_unquoted() -> None:
    pasted = parse_emails('Ada Lovelace <ada@example.com>\n"bob@example.com"')

    assert pasted.emails == ["ada@example.com", "bob@example.com"]
    assert pasted.invalid == []


def test_pieces_that_are_no_address_are_reported_as_typed() -> None:
    pasted = parse_emails("ok@example.com\nnot-an-address, half@, @example.com, a@b")

    assert pasted.emails == ["ok@example.com"]
    assert pasted.invalid == ["not-an-address", "half@", "@example.com", "a@b"]


def test_an_empty_paste_has_no_address() -> None:
    assert parse_emails(" \n , ; ").emails == []


def test_more_than_the_limit_is_refused_as_a_whole() -> None:
    text = "\n".join(f"user{i}@example.com" for i in range(MAX_EMAILS + 1))

    with pytest.raises(InvalidData, match=f"at most {MAX_EMAILS}"):
        parse_emails(text)
