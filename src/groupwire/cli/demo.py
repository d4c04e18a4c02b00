"""``groupwire demo``: the whole idea in ten seconds, on a throw-away database.

The demo registers two subscribers and one before-hook, makes a few changes through the
facade (the same service layer the API and CLI use), and prints every event at the moment
the relay delivers it to a subscriber, then a summary. It shows:

* every change records its events in the same transaction (the outbox), in commit order;
* subscribers get them from the relay, each at its own pace (the VIP welcome);
* a before-hook can veto a change: nothing is written and no event is recorded;
* removals say why (``removed``, ``customer_deleted``, ``group_deleted``);
* folding the membership events reproduces the memberships in the database.

Without ``--db`` it works on a fresh SQLite file in a temporary directory, removed at the
end. With ``--db`` the demo's names get a short suffix so they never clash with real data.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Annotated

import typer

from groupwire.cli.common import display_url, fail


def demo(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Run on this database instead of a temporary SQLite file (its data is kept; "
            "the demo's names get a suffix).",
            show_default=False,
        ),
    ] = None,
    pause: Annotated[
        float, typer.Option(min=0, max=5, help="Seconds to wait between two steps.")
    ] = 0.3,
) -> None:
    """Show groups, events, subscribers and hooks at work, on a throw-away database."""
    import secrets
    import tempfile

    from rich.console import Console

    from groupwire.app import Groupwire
    from groupwire.cli.demo_story import Demo, VipPolicy
    from groupwire.settings import Settings

    console = Console(highlight=False)
    with ExitStack() as stack:
        if db:
            url, tag = db, "-" + secrets.token_hex(2)
        else:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="groupwire-demo-"))
            url, tag = f"sqlite:///{directory}/demo.db", ""
        policy = VipPolicy()
        settings = Settings(
            database_url=url,
            plugins=[],
            load_entry_points=False,
            relay_poll_interval=0.1,
            delivery_retry_base=0.01,
            bus_url=None,  # the demo shows the in-process relay, whatever the environment says
        )
        try:
            gw = Groupwire.open(settings=settings, plugins=[policy])
        except Exception as error:
            fail(f"cannot open Groupwire on {display_url(url)}: {error}")
        stack.callback(gw.close)
        Demo(gw, policy, console, tag, pause, temporary=not db).run()
