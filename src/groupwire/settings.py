"""Configuration: one settings object, read from ``GROUPWIRE_*`` environment variables."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MAX_RETENTION_DAYS = 36500
"""A century: what keeping the webhook delivery log "forever" comes to."""


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
    builtin_linger_seconds: float = Field(
        0.1,
        ge=0,
        le=10,
        description="How long the built-in analytics, welcome-mail and notification subscribers"
        " wait once a commit wakes them, so that the commits of that time reach them as one"
        " batch (one transaction instead of one per commit); 0: at once. Webhooks never wait",
    )
    smart_schedule_max_sleep: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Longest sleep, seconds, of the scheduler of smart groups' time conditions:"
        " how late it may see a flip that another process wrote (its own process's commits"
        " wake it at once)",
    )
    auto_migrate: bool = Field(True, description="Apply migrations when opening the store")
    idempotency_key_ttl: float = Field(
        86400.0,
        gt=0,
        description="Seconds an Idempotency-Key stays in force after its first use (then it "
        "is ignored and pruned)",
    )
    # --- Admin API (docs/api.md) ---
    api_max_body_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="Largest request body the Admin API reads, in bytes; a larger one is "
        "refused with 413 before it is read whole",
    )
    api_key_cache_seconds: float = Field(
        2.0,
        ge=0,
        description="Seconds a server process trusts an API key it verified without looking "
        "it up again (a revocation through this process bites at once, one made by another "
        "process within this time); 0: look the key up on every request",
    )
    # --- Admin API event stream (docs/api.md) ---
    sse_heartbeat_interval: float = Field(
        15.0, gt=0, description="Seconds between keep-alive comments on an idle event stream"
    )
    sse_poll_interval: float = Field(
        1.0, gt=0, description="How often an event stream looks for events committed elsewhere"
    )
    # --- Redis Streams bus (docs/scale-out.md) ---
    bus_url: str | None = Field(
        None, description="redis://host:port/db to run on Redis Streams; unset: in-process"
    )
    bus_prefix: str = Field("groupwire:", description="Prefix of every Redis key of the bus")
    bus_partitions: int = Field(
        8, ge=1, le=1024, description="Streams the events are hashed into (by partition key)"
    )
    bus_batch_size: int = Field(500, ge=1, description="Events per publish and per read")
    bus_lease_seconds: float = Field(
        5.0, gt=0, description="How long a worker owns a stream without renewing its lease"
    )
    bus_claim_idle_seconds: float = Field(
        5.0, ge=0, description="Idle time after which a dead worker's pending entries are claimed"
    )

    # --- webhooks (docs/webhooks.md) ---
    webhooks_allow_private: bool = Field(
        False,
        description="Allow webhook URLs on loopback, private and link-local addresses (dev, tests)",
    )
    webhooks_allow_http: bool | None = Field(
        None, description="Allow plain http webhook URLs; unset: as webhooks_allow_private"
    )
    webhooks_timeout: float = Field(15.0, gt=0, description="Seconds one delivery attempt may take")
    webhooks_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
        description="Comma-separated seconds to wait before each attempt (the first: 0)",
    )
    webhooks_disable_after: float = Field(
        5 * 86400, gt=0, description="Seconds of continuous failure before an endpoint is disabled"
    )
    webhooks_endpoint_concurrency: int = Field(
        10, ge=1, le=1000, description="Requests in flight to one endpoint at most"
    )
    webhooks_max_in_flight: int = Field(
        200, ge=1, description="Requests in flight to all endpoints together at most"
    )
    webhooks_poll_interval: float = Field(
        1.0, gt=0, description="How often the dispatcher looks for messages queued elsewhere"
    )
    webhooks_response_excerpt: int = Field(
        4096, ge=0, description="Bytes of each response body kept in the delivery log"
    )
    webhooks_response_max_bytes: int = Field(
        65536, ge=0, description="Bytes of a response body read at most"
    )
    webhooks_secret_grace: float = Field(
        86400, ge=0, description="Seconds a rotated-out secret still signs deliveries"
    )
    webhooks_dispatch: bool = Field(
        True, description="Send webhooks from this process when it starts (gw.start())"
    )
    webhooks_retention_days: float = Field(
        30.0,
        gt=0,
        le=MAX_RETENTION_DAYS,
        description="Days a finished webhook message and its attempts are kept after their "
        "last change (pending messages, and failed ones of ordered endpoints, are never pruned)",
    )
    webhooks_prune_interval: float = Field(
        3600.0, gt=0, description="Seconds between two prunings of the delivery log by a dispatcher"
    )

    # --- welcome emails and stakeholder notifications (docs/use-cases.md) ---
    smtp_host: str = Field("localhost", description="SMTP server that sends Groupwire's emails")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP server port")
    smtp_username: str | None = Field(None, description="SMTP user name (unset: no login)")
    smtp_password: SecretStr | None = Field(None, description="SMTP password")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS")
    smtp_tls: bool = Field(False, description="Connect with TLS from the start (port 465)")
    smtp_timeout: float = Field(30.0, gt=0, description="Seconds one SMTP exchange may take")
    mail_sender: str | None = Field(
        None, description="Default From address of welcome and notification emails"
    )

    @field_validator("plugins", mode="before")
    @classmethod
    def _split_plugins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("webhooks_retry_schedule", mode="before")
    @classmethod
    def _split_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


def reference(*sections: tuple[str, type[BaseSettings]]) -> str:
    """The configuration reference as Markdown (``docs/configuration.md`` is this output),
    followed by one table per ``(title, settings class)`` of an adapter that keeps settings
    of its own (the command line passes them: the core imports no adapter)."""
    lines = [
        "# Configuration",
        "",
        "Every setting is an environment variable (or a keyword of `Groupwire.open`, in lower",
        "case without the prefix). Generated from `groupwire.settings.Settings`:",
        "`uv run groupwire config > docs/configuration.md`.",
        "",
        *_table(Settings),
    ]
    for title, settings in sections:
        lines += ["", f"## {title}", "", *_table(settings)]
    return "\n".join([*lines, *PRODUCTION_TUNING]) + "\n"


def _table(settings: type[BaseSettings]) -> list[str]:
    prefix = str(settings.model_config.get("env_prefix", ""))
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in settings.model_fields.items():
        variable = str(field.validation_alias or f"{prefix}{name}").upper()
        default = field.get_default(call_default_factory=True)
        if isinstance(default, list):
            default = ",".join(map(str, default)) if default else "[]"
        shown = "(unset)" if default is None else f"`{default}`"
        lines.append(f"| `{variable}` | {shown} | {field.description or ''} |")
    return lines


PRODUCTION_TUNING = (
    "",
    "## Production tuning",
    "",
    "Measured with `benchmarks/api_floor.py` (every Admin API route against a bare FastAPI",
    "route running the same SQL with the same driver; run it on your hardware).",
    "",
    "- **Event loop and HTTP parser**: install `uvicorn[standard]` (a dependency of Groupwire):",
    "  uvicorn's defaults (`--loop auto --http auto`) then use `uvloop` and `httptools`.",
    "- **Workers**: `groupwire serve --workers N` runs N server processes, each with its own",
    "  connection pool and in-process relay; N = the cores the server may use. Routes run in",
    "  a thread pool, and Python runs one thread of a process at a time: a second process, not",
    "  more threads, is what uses a second core. On SQLite, writes queue on the database's",
    "  single write lock whatever N is; more workers add read throughput.",
    "- **Connection pool** (PostgreSQL): 24 connections kept open per process plus 4 on demand.",
    "  A request holds one at a time (its change or read; its API key is looked up at most every",
    "  `GROUPWIRE_API_KEY_CACHE_SECONDS`), so the 16 concurrent clients of the benchmark, the",
    "  built-in subscribers and the webhook dispatcher neither wait for the pool nor reopen",
    "  connections; keep `N x 28` below the server's `max_connections` (PostgreSQL's default,",
    "  100, takes 3 workers), or put PgBouncer (transaction mode) in front when it is not.",
    "- **API keys**: a process trusts a key it verified for `GROUPWIRE_API_KEY_CACHE_SECONDS`",
    "  (default 2) without reading it again. Revoking through the server (or `revoke_key` in the",
    "  same process) bites at once; a revocation made elsewhere (the CLI, another worker) within",
    "  that time. Set it to 0 to read the key on every request.",
    "- **Memory**: a server process under 16 concurrent clients stays below 150 MB resident",
    "  (the benchmark prints the peak).",
    "- **Subscribers**: the built-in ones (webhooks, welcome mail, notifications, analytics) run",
    "  in the server's own threads and share its cores. The events a process commits are handed",
    "  to its relay directly (no read back from the log), and a subscriber that wants none of",
    "  them does not wake. The analytics, welcome-mail and notification subscribers wait",
    "  `GROUPWIRE_BUILTIN_LINGER_SECONDS` (default 0.1) once a commit wakes them, so that the",
    "  commits of that time reach them as one batch: one rollup transaction for many membership",
    "  changes instead of one each (measured: adding members one at a time on PostgreSQL, the",
    "  server's p50 went from 3.6x to 2.2x its floor with one client, 3.3x to 2.5x with 16).",
    "  Stats and welcome mails come that much later; webhooks never wait. For write-heavy loads,",
    "  set `GROUPWIRE_BUS_URL=redis://...` and run",
    "  `groupwire worker` processes: the server then only publishes the events.",
)
