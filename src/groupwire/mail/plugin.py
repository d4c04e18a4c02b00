"""The built-in welcome-email plugin, registered by every :class:`groupwire.Groupwire`.

It gives the instance ``gw.mail`` (:class:`groupwire.mail.WelcomeEmails`) and subscribes
``groupwire.mail.welcome`` to ``customer_group.customer_added``, a batch of events at a time:
groups without a welcome email cost one read per batch and send nothing.
"""

from __future__ import annotations

from typing import Any

from groupwire.domain import events as ev
from groupwire.events.checkpoints import since_lowest
from groupwire.hooks.specs import hookimpl
from groupwire.mail.smtp import SmtpConfig, SmtpSender
from groupwire.mail.tables import welcome_email
from groupwire.mail.welcome import SUBSCRIBER, WelcomeEmails


@hookimpl
def register_subscribers(gw: Any) -> None:
    smtp = SmtpSender(SmtpConfig.from_settings(gw.settings))
    gw.mail = WelcomeEmails(gw.engine, gw.idempotency, smtp, default_sender=gw.settings.mail_sender)
    # A welcome email mails the joins committed after it was first saved (its start_sequence):
    # the subscriber's first registration, whenever it comes, starts at the lowest such
    # start, or at the end of the log while no group has one (no past joiner is mailed).
    gw.subscribe(
        ev.CUSTOMER_ADDED,
        gw.mail.handle_events,
        name=SUBSCRIBER,
        start=since_lowest(welcome_email.c.start_sequence),
        batch=True,
        linger=gw.settings.builtin_linger_seconds,
    )
