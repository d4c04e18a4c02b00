"""The built-in welcome-email plugin, registered by every :class:`groupwire.Groupwire`.

It gives the instance ``gw.mail`` (:class:`groupwire.mail.WelcomeEmails`) and subscribes
``groupwire.mail.welcome`` to ``customer_group.customer_added``, a batch of events at a time:
groups without a welcome email cost one read per batch and send nothing.
"""

from __future__ import annotations

from typing import Any

from groupwire.domain import events as ev
from groupwire.hooks.specs import hookimpl
from groupwire.mail.smtp import SmtpConfig, SmtpSender
from groupwire.mail.welcome import SUBSCRIBER, WelcomeEmails


@hookimpl
def register_subscribers(gw: Any) -> None:
    smtp = SmtpSender(SmtpConfig.from_settings(gw.settings))
    gw.mail = WelcomeEmails(gw.engine, gw.idempotency, smtp, default_sender=gw.settings.mail_sender)
    # Starts at the end of the log: adding the feature to a live shop mails no past joiner.
    gw.subscribe(
        ev.CUSTOMER_ADDED,
        gw.mail.handle_events,
        name=SUBSCRIBER,
        from_now=True,
        batch=True,
        linger=gw.settings.builtin_linger_seconds,
    )
