"""Request bodies. Unknown fields are refused (``extra="forbid"``), as Medusa's validators do.

Only the shape is checked here (types, required fields); what a value may be (a non-empty
name, a valid email) is the service's call. Text that no backend can store — NUL characters,
lone surrogates — and non-finite numbers are refused here, because they would otherwise fail
inside the database driver instead of as a clear 400.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import JsonDict


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


class CreateCustomerGroup(Body):
    name: str
    description: str | None = None
    metadata: dict[str, Any] | None = None


class UpdateCustomerGroup(Body):
    name: str | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = Field(
        None, description='Merged: keys set, a key set to "" removed; null clears'
    )


EMAIL_SCHEMA: JsonDict = {"format": "email"}


class CreateCustomer(Body):
    email: str | None = Field(None, json_schema_extra=EMAIL_SCHEMA)
    first_name: str | None = None
    last_name: str | None = None
    company_name: str | None = None
    phone: str | None = None
    metadata: dict[str, Any] | None = None


class UpdateCustomer(Body):
    email: str | None = Field(None, json_schema_extra=EMAIL_SCHEMA)
    first_name: str | None = None
    last_name: str | None = None
    company_name: str | None = None
    phone: str | None = None
    metadata: dict[str, Any] | None = Field(
        None, description='Merged: keys set, a key set to "" removed; null clears'
    )


class BatchIds(Body):
    """Add and remove in one transaction: all or nothing."""

    add: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)


class CreateApiKey(Body):
    name: str
    scopes: list[Literal["read", "write", "admin"]] = Field(min_length=1)
