"""``groupwire worker``: deliver events to subscribers, without serving the API.

The subscribers are those that plugins register through the ``register_subscribers`` hook
(installed plugins, ``GROUPWIRE_PLUGINS``, ``--plugin``). Each keeps its checkpoint in the
database, so a restarted worker resumes where the last one stopped.
"""

from __future__ import annotations

import typer

from groupwire.cli.common import (
    DbOption,
    database_url,
    display_url,
    err,
    escape,
    fail,
    open_groupwire,
    out,
)
from groupwire.cli.server import MedusaCaptureOption, PluginOption, with_medusa_capture
from groupwire.cli.signals import stop_requested


def worker(
    ctx: typer.Context,
    db: DbOption = None,
    plugin: PluginOption = None,
    medusa_capture: MedusaCaptureOption = None,
) -> None:
    """Deliver events to the subscribers plugins register, until SIGTERM or Ctrl+C."""
    from redis.exceptions import RedisError

    from groupwire.events.worker import run_redis_worker

    url = database_url(ctx, db)
    plugin = with_medusa_capture(medusa_capture, plugin or [])
    with stop_requested() as stopping, open_groupwire(url, plugins=plugin or []) as gw:
        names = [s.name for s in gw.subscribers]
        if not names:
            err().print(
                "[yellow]No subscriber is registered:[/] install a plugin or name one with "
                "--plugin / GROUPWIRE_PLUGINS (hook register_subscribers).",
                soft_wrap=True,
            )
        gw.start()
        out().print(
            f"Worker delivering events from {escape(display_url(url))} to "
            f"{len(names)} subscribers: {escape(', '.join(names)) or '-'}. Stop with Ctrl+C.",
            soft_wrap=True,
        )
        if gw.bus_relay is not None:  # Redis Streams bus: consume here (docs/scale-out.md)
            try:
                run_redis_worker(gw.worker(), stopping)
            except (RuntimeError, RedisError) as error:
                fail(f"the Redis worker stopped: {error} (is {gw.settings.bus_url} reachable?)")
        while not stopping.wait(0.5):
            pass
        err().print("Stopping: finishing the current deliveries...", soft_wrap=True)
    err().print("Stopped.")
