"""The built-in stakeholder-notification plugin: ``gw.notifications`` and the
``groupwire.notify`` subscriber (mails; a rule's webhook goes through the webhooks plugin)."""

from __future__ import annotations

from typing import Any

from groupwire.events.checkpoints import since_lowest
from groupwire.hooks.specs import hookimpl
from groupwire.mail.smtp import SmtpConfig, SmtpSender
from groupwire.notify.rules import EVENT_TYPES, SUBSCRIBER, NotificationRules
from groupwire.notify.tables import notification_rule


@hookimpl
def register_subscribers(gw: Any) -> None:
    smtp = SmtpSender(SmtpConfig.from_settings(gw.settings))
    gw.notifications = NotificationRules(gw, smtp, default_sender=gw.settings.mail_sender)
    # A rule notifies of the events committed after its creation (its start_sequence): the
    # subscriber's first registration, whenever it comes, starts at the lowest such start,
    # or at the end of the log while there is no rule. (A rule's webhook is an endpoint:
    # the webhooks subscriber starts the same way for it.)
    gw.subscribe(
        EVENT_TYPES,
        gw.notifications.handle_events,
        name=SUBSCRIBER,
        start=since_lowest(notification_rule.c.start_sequence),
        batch=True,
        linger=gw.settings.builtin_linger_seconds,
    )
