"""Turning a pasted block of email addresses into customers, reporting what does not match.

Anything a spreadsheet or a mail client produces is accepted: addresses separated by
newlines, commas, semicolons or spaces, optionally as ``Name <address>``. Addresses are
compared as the store keeps them (trimmed, lower case).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from groupwire.app import Groupwire
from groupwire.domain.errors import InvalidData
from groupwire.domain.models import Customer

MAX_EMAILS = 1000
_CHUNK = 200
_ENTRY_SEPARATORS = re.compile(r"[\r\n,;]+")
_ANGLED = re.compile(r"<([^<>]*)>")
_EMAIL = re.compile(r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$")


@dataclass(slots=True)
class Pasted:
    """The distinct addresses in the order given, and the pieces that are no address."""

    emails: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)


def parse_emails(text: str) -> Pasted:
    pasted = Pasted()
    seen: set[str] = set()
    for entry in _ENTRY_SEPARATORS.split(text):
        angled = _ANGLED.search(entry)
        tokens = [angled.group(1)] if angled else entry.split()
        for token in tokens:
            address = token.strip().strip("\"'").lower()
            if not address:
                continue
            if not _EMAIL.match(address):
                pasted.invalid.append(token.strip())
            elif address not in seen:
                seen.add(address)
                pasted.emails.append(address)
    if len(pasted.emails) > MAX_EMAILS:
        raise InvalidData(f"Paste at most {MAX_EMAILS} addresses at a time")
    return pasted


def customers_by_email(gw: Groupwire, emails: Sequence[str]) -> dict[str, Customer]:
    """The live customers with these addresses, keyed by address."""
    found: dict[str, Customer] = {}
    for start in range(0, len(emails), _CHUNK):
        part = list(emails[start : start + _CHUNK])
        for customer in gw.customers.list(emails=part, limit=len(part)).items:
            if customer.email:  # always, as found by email; typed optional
                found[customer.email.lower()] = customer
    return found
