"""Request bodies. Unknown fields are refused (``extra="forbid"``), as Medusa's validators do.

The shape is checked here (types, required fields) and so are the size limits of
:mod:`groupwire.domain.limits`, which the OpenAPI document states with every other rule (a
non-blank name, an email's shape) that the service enforces. Text that no backend can store —
NUL characters, lone surrogates — and non-finite numbers are refused here, because they would
otherwise fail inside the database driver instead of as a clear 400.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.json_schema import JsonDict

from groupwire.domain.changes import Context
from groupwire.domain.limits import (
    DESCRIPTION_MAX,
    EMAIL_MAX,
    ID_MAX,
    METADATA_KEY_MAX,
    METADATA_MAX_BYTES,
    NAME_MAX,
    PHONE_MAX,
)

NO_NUL = "^[^\\u0000]*$"
"""Text without NUL characters: the rule of every string (no database stores one)."""
NOT_BLANK = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
"""A name: some character that is not white space, and no NUL."""
JSON_VALUE_REF = "#/components/schemas/JsonValue"
"""Any JSON value whose text holds no NUL character (defined by :mod:`groupwire.api.openapi`)."""

Name = Annotated[
    str, Field(min_length=1, max_length=NAME_MAX, json_schema_extra={"pattern": NOT_BLANK})
]
PersonName = Annotated[str | None, Field(max_length=NAME_MAX)]
Description = Annotated[str | None, Field(max_length=DESCRIPTION_MAX)]
Phone = Annotated[str | None, Field(max_length=PHONE_MAX)]
Id = Annotated[str, Field(min_length=1, max_length=ID_MAX)]
Metadata = Annotated[
    dict[str, Any] | None,
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "object",
                    "propertyNames": {"maxLength": METADATA_KEY_MAX, "pattern": NO_NUL},
                    "additionalProperties": {"$ref": JSON_VALUE_REF},
                },
                {"type": "null"},
            ],
            "description": f"Free-form JSON object, at most {METADATA_MAX_BYTES:,} bytes",
        }
    ),
]


def storable(value: Any, where: str = "body") -> None:
    """Raise ValueError when ``value`` (any JSON value) holds something no backend stores."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where} contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(f"{where} is not valid Unicode text") from error
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} holds a non-finite number")
    elif isinstance(value, dict):
        for key, item in value.items():
            storable(key, where)
            storable(item, f"{where}.{key}")
    elif isinstance(value, list):
        for item in value:
            storable(item, where)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        storable(data)
        return data

    def given(self) -> dict[str, Any]:
        """The fields the client sent (``null`` included), for partial updates."""
        return {name: getattr(self, name) for name in self.model_fields_set}


AdditionalData = Annotated[
    dict[str, Any] | None,
    Field(
        description="Handed to the hooks of this change (their `context.additional_data`), "
        "as Medusa hands it to its workflow hooks; never stored, never in an event"
    ),
]


class BodyWithAdditionalData(Body):
    """A body of Medusa's ``WithAdditionalData`` kind: it may carry ``additional_data``.

    Each subclass declares ``additional_data: AdditionalData = None`` as its last field, where
    Medusa's validator puts it (the order of fields is the order of Medusa's issues; a field
    declared here would come first).
    """

    def given(self) -> dict[str, Any]:
        """The fields the client sent, without ``additional_data`` (not a field to store)."""
        fields = super().given()
        fields.pop("additional_data", None)
        return fields

    def hook_context(self, context: Context) -> Context:
        """``context`` carrying this body's ``additional_data`` for the hooks."""
        data: dict[str, Any] | None = getattr(self, "additional_data", None)
        return context if data is None else replace(context, additional_data=data)


MERGED = 'Merged: keys set, a key set to "" removed; null clears'


# Fields in the order of Medusa's validators (zod reports issues in that order); Groupwire's
# additions last.


# Medusa's group and membership bodies refuse ``additional_data``; Groupwire takes it there
# too (as it takes ``description``), so group hooks get the extension point Medusa's
# customer workflows offer.


RULE_HELP = (
    "A smart group's rule (Groupwire addition, see docs/smart-groups.md): Medusa's filter"
    " operators over customer fields, metadata.<key>, addresses.<field>, orders.count,"
    " orders.total, orders.first_placed_at, orders.last_placed_at and groups.id, with"
    " include and exclude lists of customer ids; null makes the group manual"
)
GroupRule = Annotated[dict[str, Any] | None, Field(description=RULE_HELP)]


class CreateCustomerGroup(BodyWithAdditionalData):
    name: Name
    metadata: Metadata = None
    description: Description = None
    rule: GroupRule = None
    additional_data: AdditionalData = None


class UpdateCustomerGroup(BodyWithAdditionalData):
    name: Name = None  # type: ignore[assignment]  # null is refused, as Medusa does
    metadata: Metadata = Field(None, description=MERGED)
    description: Description = None
    rule: GroupRule = None
    additional_data: AdditionalData = None


class PreviewRule(Body):
    """The rule to preview (null: the group would become manual and nobody would move)."""

    rule: GroupRule = None


EMAIL_SCHEMA: JsonDict = {"format": "email"}
Email = Annotated[str, Field(max_length=EMAIL_MAX, json_schema_extra=EMAIL_SCHEMA)]


class CreateCustomer(BodyWithAdditionalData):
    email: Email | None = None
    company_name: PersonName = None
    first_name: PersonName = None
    last_name: PersonName = None
    phone: Phone = None
    metadata: Metadata = None
    additional_data: AdditionalData = None


class UpdateCustomer(BodyWithAdditionalData):
    email: Email | None = None
    company_name: PersonName = None
    first_name: PersonName = None
    last_name: PersonName = None
    phone: Phone = None
    metadata: Metadata = Field(None, description=MERGED)
    additional_data: AdditionalData = None


class BatchIds(BodyWithAdditionalData):
    """Add and remove in one transaction: all or nothing."""

    add: list[Id] = Field(default_factory=list)
    remove: list[Id] = Field(default_factory=list)
    additional_data: AdditionalData = None


class CreateApiKey(Body):
    name: Name
    scopes: list[Literal["read", "write", "admin"]] = Field(min_length=1)
