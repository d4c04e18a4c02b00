"""Customers named on the command line or in a CSV file, resolved to customer ids.

A reference is either a customer id (``cus_...``) or an email address (anything with an
``@``). A CSV file holds one reference per line (first cell), or has a header row with a
column named ``id`` (or ``customer_id``) and/or ``email``; then each row uses its id when
present and its email otherwise (so a customer without email is named by its id). Blank
lines are skipped, a UTF-8 byte-order mark is ignored, emails match case-insensitively, and a
customer named twice counts once.

Resolution reads the store only; it reports every reference that names no live customer
(:class:`Unknown`), so the caller can refuse the whole file before writing anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from groupwire.app import Groupwire

ID_COLUMNS = ("id", "customer_id")
EMAIL_COLUMN = "email"


@dataclass(frozen=True, slots=True)
class CustomerRef:
    """One reference and where it came from (``line`` 0 for a ``--customer`` option)."""

    value: str
    line: int = 0

    @property
    def is_email(self) -> bool:
        return "@" in self.value

    def where(self) -> str:
        return f"line {self.line}" if self.line else "--customer"


@dataclass(frozen=True, slots=True)
class Unknown:
    ref: CustomerRef

    def describe(self) -> str:
        what = "email" if self.ref.is_email else "id"
        return f"{self.ref.where()}: {self.ref.value} (no customer with this {what})"


@dataclass(slots=True)
class Resolution:
    """Customer ids in the order first named, and the references that named nobody."""

    ids: list[str] = field(default_factory=list)
    unknown: list[Unknown] = field(default_factory=list)


class CustomerFileError(ValueError):
    """The file cannot be read as a list of customers (missing, binary, wrong header)."""


def refs_from_values(values: Iterable[str]) -> list[CustomerRef]:
    return [CustomerRef(v.strip()) for v in values if v.strip()]


def refs_from_csv(path: Path) -> list[CustomerRef]:
    """Read the references of a CSV file (see the module's docstring for the format)."""
    import csv

    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise CustomerFileError(f"cannot read {path}: {error}") from None
    numbered = [(n, [c.strip() for c in row]) for n, row in enumerate(rows, 1) if any(row)]
    if not numbered:
        return []
    _, first = numbered[0]
    header = [cell.lower() for cell in first]
    if not any(name in header for name in (*ID_COLUMNS, EMAIL_COLUMN)):
        return [CustomerRef(_first_cell(row), n) for n, row in numbered if _first_cell(row)]
    id_at = next((header.index(c) for c in ID_COLUMNS if c in header), None)
    email_at = header.index(EMAIL_COLUMN) if EMAIL_COLUMN in header else None
    refs = []
    for n, row in numbered[1:]:
        value = _cell(row, id_at) or _cell(row, email_at)
        if value:
            refs.append(CustomerRef(value, n))
    return refs


def _first_cell(row: Sequence[str]) -> str:
    return next((cell for cell in row if cell), "")


def _cell(row: Sequence[str], index: int | None) -> str:
    return row[index] if index is not None and index < len(row) else ""


def resolve(gw: Groupwire, refs: Sequence[CustomerRef]) -> Resolution:
    """Map every reference to a live customer's id; collect those that name nobody."""
    from groupwire.store.repository import chunks

    emails = {r.value.lower() for r in refs if r.is_email}
    ids = {r.value for r in refs if not r.is_email}
    by_email: dict[str, str] = {}
    for part in chunks(sorted(emails)):
        page = gw.customers.list(emails=list(part), limit=len(part))
        by_email.update({c.email.lower(): c.id for c in page.items if c.email})
    live: set[str] = set()
    for part in chunks(sorted(ids)):
        page = gw.customers.list(ids=list(part), limit=len(part))
        live.update(c.id for c in page.items)
    result = Resolution()
    seen: set[str] = set()
    for ref in refs:
        found = (
            by_email.get(ref.value.lower())
            if ref.is_email
            else (ref.value if ref.value in live else None)
        )
        if found is None:
            result.unknown.append(Unknown(ref))
        elif found not in seen:
            seen.add(found)
            result.ids.append(found)
    return result
