"""The library lists with the same filters as the Admin API: ``where=`` takes a filter tree."""

from __future__ import annotations

from groupwire import Groupwire
from groupwire.domain.filters import All, AnyOf, Compare, Related, Search, like_regex


def test_given_customers_when_listing_with_a_filter_tree_then_only_matches_return(
    gw: Groupwire,
) -> None:
    vip = gw.groups.create("VIP")
    ada = gw.customers.create("ada@x.io", first_name="Ada", last_name="Lovelace")
    bob = gw.customers.create("bob@x.io", first_name="Bob", company_name="Doe & Co")
    gw.groups.add_customers(vip.id, [ada.id])

    def first_names(where: object) -> list[str | None]:
        page = gw.customers.list(where=where, order="first_name")
        return [customer.first_name for customer in page.items]

    assert first_names(Compare("company_name", "eq", None)) == ["Ada"]
    assert first_names(Related("groups", All((Compare("name", "eq", "VIP"),)))) == ["Ada"]
    assert first_names(AnyOf((Compare("id", "eq", bob.id), Search("LOVE")))) == ["Ada", "Bob"]
    assert first_names(Compare("email", "ilike", "B%")) == ["Bob"]
    assert first_names(Compare("email", "like", "B%")) == []
    assert first_names(Search("doe co")) == ["Bob"]
    assert first_names(Search("100%")) == []


def test_given_a_like_pattern_then_its_regular_expression_matches_the_same_texts() -> None:
    assert like_regex("a%b_c") == "^a.*b.c\\Z"
    assert like_regex("100\\%") == "^100%\\Z"
    assert like_regex("x\\") == "^x\\\\\\Z"
