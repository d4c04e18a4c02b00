"""Configuration: one settings object, read from ``GROUPWIRE_*`` environment variables."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GROUPWIRE_", extra="ignore")

    database_url: str = Field(
        "sqlite:///groupwire.db",
        description="SQLAlchemy URL: an SQLite file (default) or postgresql://...",
    )
    plugins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated modules to register as plugins, besides entry points",
    )
    load_entry_points: bool = Field(
        True, description="Load plugins installed under the entry point group groupwire.plugins"
    )
    event_source: str = Field("groupwire", description="CloudEvents `source` of every event")
    delivery_max_attempts: int = Field(5, ge=1, description="Attempts before dead-lettering")
    delivery_retry_base: float = Field(0.1, ge=0, description="First retry delay, seconds")
    delivery_retry_max: float = Field(30.0, ge=0, description="Longest retry delay, seconds")
    relay_poll_interval: float = Field(
        0.5, gt=0, description="How often the relay looks for events committed elsewhere"
    )
    auto_migrate: bool = Field(True, description="Apply migrations when opening the store")

    @field_validator("plugins", mode="before")
    @classmethod
    def _split_plugins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
