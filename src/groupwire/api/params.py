"""Query strings as Medusa v2 writes them: paging, ``order``, ``fields``, time filters, If-Match.

Every query model forbids unknown parameters (400 ``invalid_data``, as Medusa's strict
validators do). Time filters use Medusa's operator keys: ``created_at[$gt]=2024-01-01T00:00:00Z``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.json_schema import JsonValue

from groupwire.domain.errors import InvalidData
from groupwire.domain.limits import excerpt, shorten

MAX_LIMIT = 1000
"""The largest page of Groupwire's own event listings."""
MAX_OFFSET = 2**31 - 1
MAX_PAGE = 2**31 - 1
"""The largest ``limit`` of a customer or group listing. Medusa takes any limit and answers
with every matching row up to it; so does Groupwire (memory grows with the rows that match,
never with the number asked for)."""
MAX_SEQUENCE = 2**63 - 1


def _to_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as error:
        raise ValueError("date is out of range") from error


_ISO_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$"
)


def _iso_text(value: Any) -> Any:
    """Only ISO 8601 text is a time here (pydantic would also read ``0.5`` as a timestamp)."""
    if isinstance(value, str) and not _ISO_TIME.match(value):
        raise ValueError("must be a date and time in ISO 8601, e.g. 2024-01-31T12:00:00Z")
    return value


Time = Annotated[datetime | None, BeforeValidator(_iso_text), AfterValidator(_to_utc)]
"""An optional ISO 8601 date and time, in UTC (a time without offset is taken as UTC)."""
RequiredTime = Annotated[datetime, BeforeValidator(_iso_text), AfterValidator(_to_utc)]


class StrictQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


FIELDS_HELP = "Medusa fields: `*customers`, `+f`, `-f`, `a,b`"
ORDER_HELP = "A field, `-` prefix for descending"


class FieldsQuery(StrictQuery):
    fields: str | None = Field(None, description=FIELDS_HELP)


class PageQuery(FieldsQuery):
    """Paging, ``q``, ``order`` and ``fields`` of a Medusa list route. Its filters are read from
    the raw query string (:mod:`groupwire.api.list_filters`), which also refuses unknown keys."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    q: str | None = Field(
        None, description="Free-text search: every word in one of the searchable fields"
    )
    limit: int = Field(50, ge=0, le=MAX_PAGE)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    order: str | None = Field(None, description=ORDER_HELP)
    with_deleted: bool | None = Field(
        None, description="Accepted as Medusa accepts it; deleted rows are never listed"
    )


class EventQuery(StrictQuery):
    type: list[str] | None = Field(
        None, description="Event types or `prefix.*` patterns (repeat the parameter)"
    )
    since: Time = Field(None, description="Events at or after this time (ISO 8601)")
    until: Time = Field(None, description="Events before this time (ISO 8601)")
    after: int | None = Field(None, ge=0, le=MAX_SEQUENCE, description="Sequence cursor")
    limit: int = Field(100, ge=1, le=MAX_LIMIT)


class EventListQuery(EventQuery):
    subject: str | None = Field(None, description="The group or customer id events are about")


class StreamQuery(StrictQuery):
    type: list[str] | None = Field(None, description="Event types or `prefix.*` patterns")
    after: int | None = Field(
        None, ge=0, le=MAX_SEQUENCE, description="Start after this sequence (or Last-Event-ID)"
    )


# --- order -----------------------------------------------------------------------------------


def parse_order(order: str | None, sortable: Sequence[str]) -> str | None:
    """``name`` or ``-created_at`` (descending), for a field in ``sortable``."""
    if order is None or order == "":
        return None
    name = order[1:] if order.startswith("-") else order
    if name not in sortable:
        raise InvalidData(f"Cannot order by {excerpt(order)}; use one of: {', '.join(sortable)}")
    return order


def order_param(sortable: Sequence[str]) -> Any:
    """The ``order`` query field for these sortable fields, its values listed in the schema."""
    values: list[JsonValue] = ["", *sortable, *(f"-{name}" for name in sortable)]
    return Field(None, description=ORDER_HELP, json_schema_extra={"enum": values})


# --- fields ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    """What a resource looks like: its default fields, other allowed fields, its relations."""

    defaults: tuple[str, ...]
    relations: Mapping[str, Shape] = field(default_factory=dict)
    optional: tuple[str, ...] = ()  # fields returned only when asked for (``+field``)


@dataclass(frozen=True, slots=True)
class Selection:
    fields: tuple[str, ...]
    relations: Mapping[str, Selection] = field(default_factory=dict)


def fields_pattern(shape: Shape) -> str:
    """The regular expression of every ``fields`` value :func:`select_fields` accepts.

    Entries naming no field are accepted (and ignored) as Medusa accepts them; only a relation
    the resource does not have (``*x``, ``x.y``) or a nested relation path is refused.
    """
    relations = "|".join(re.escape(name) for name in shape.relations)
    tokens = [
        "-[^,]*",  # dropping anything: never refused
        "\\+[^,.]*",  # adding a field or a whole relation
        "[^,.*+\\-\\s][^,.]*",  # a field of a plain list
    ]
    if relations:
        tokens.append(f"[+*]?(?:{relations})\\.[^,.]*")  # fields of a relation
        tokens.append(f"\\*(?:{relations})")  # a relation with its defaults
    token = "(?:" + "|".join(tokens) + ")"
    return f"^\\s*(?:{token}\\s*)?(?:,\\s*(?:{token}\\s*)?)*$"


def fields_param(shape: Shape) -> Any:
    """The ``fields`` query field for a resource of this shape, its grammar in the schema."""
    pattern = fields_pattern(shape)
    return Field(None, description=FIELDS_HELP, json_schema_extra={"pattern": pattern})


def select_fields(spec: str | None, shape: Shape) -> Selection:
    """Medusa's ``fields``: a plain list replaces the defaults; ``+x``/``*rel`` add, ``-x`` drops.

    ``rel.field`` picks fields of a relation (``rel.*``: its defaults). ``id`` is always
    returned. An entry naming no field of the resource is ignored, as Medusa ignores it (a
    plain list of unknown names still replaces the defaults: only ``id`` is left). Refused
    (400): ``*x`` or ``x.y`` for a relation ``x`` the resource does not have, and nested
    relation paths, which Medusa cannot resolve either.
    """
    tokens = [t.strip() for t in (spec or "").split(",") if t.strip()]
    explicit = any(t[0] not in "+-*" for t in tokens)
    chosen: list[str] = ["id"] if explicit else list(shape.defaults)
    relations: dict[str, list[str] | None] = {}  # None: the relation's defaults
    for token in tokens:
        sign, name = (token[0], token[1:]) if token[0] in "+-*" else ("", token)
        rel, dot, sub = name.partition(".")
        if sign == "-":
            if name in shape.relations:
                relations.pop(name, None)
            elif name != "id" and name in chosen:
                chosen.remove(name)
        elif rel in shape.relations and "." not in sub:
            if sub == "*" or not dot:
                relations[rel] = None
            else:
                current = relations.setdefault(rel, [])
                known = sub in _known(shape.relations[rel])
                if current is not None and known and sub not in current:
                    current.append(sub)
        elif sign == "*" or dot:
            raise InvalidData(f"Unknown relation: {shorten(token)}")
        elif name in _known(shape) and name not in chosen:
            chosen.append(name)
    selected = {
        rel: Selection(
            tuple(dict.fromkeys(["id", *subs]))
            if subs is not None
            else shape.relations[rel].defaults
        )
        for rel, subs in relations.items()
    }
    return Selection(tuple(chosen), selected)


def _known(shape: Shape) -> tuple[str, ...]:
    return shape.defaults + shape.optional


# --- If-Match --------------------------------------------------------------------------------


_ETAG = r'(?:W/)?(?:"[0-9]{1,11}"|[0-9]{1,11})'
IF_MATCH_PATTERN = rf"^\s*(?:\*|{_ETAG}(?:\s*,\s*{_ETAG})*)?\s*$"
"""``*``, or ETags as this API issues them (``"3"``, ``W/"3"``), comma-separated."""
_IF_MATCH = re.compile(IF_MATCH_PATTERN)


def expected_version(if_match: str | None, current: Callable[[], int]) -> int | None:
    """The version an ``If-Match`` header asks for (None: no condition).

    ``*`` matches any version; a list matches when one entry is the current version. A header
    that is no list of ETags this API could have issued is malformed: 400, never 412 (a
    well-formed but stale one is the 412).
    """
    if if_match is None or not if_match.strip():
        return None
    if not _IF_MATCH.match(if_match):
        raise InvalidData(
            'If-Match must be "*" or ETags as this API issues them, e.g. "3" or W/"3", '
            f"got {excerpt(if_match)}"
        )
    tags = [raw.strip().removeprefix("W/").strip('"') for raw in if_match.split(",")]
    if "*" in tags:
        return None
    versions = [int(tag) for tag in tags]
    if len(versions) == 1:
        return versions[0]
    actual = current()
    return actual if actual in versions else versions[0]


IF_MATCH_SCHEMA = WithJsonSchema({"type": "string", "pattern": IF_MATCH_PATTERN})
"""Put on an ``If-Match`` header parameter: the schema states what the header may be."""


def etag(version: int) -> str:
    return f'"{version}"'
