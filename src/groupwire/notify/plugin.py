"""The built-in stakeholder-notification plugin: ``gw.notifications`` and the
``groupwire.notify`` subscriber (mails; a rule's webhook goes through the webhooks plugin)."""

from __future__ import annotations

from typing import Any

from groupwire.hooks.specs import hookimpl
from groupwire.mail.smtp import SmtpConfig, SmtpSender
from groupwire.notify.rules import EVENT_TYPES, SUBSCRIBER, NotificationRules


@hookimpl
def register_subscribers(gw: Any) -> None:
    smtp = SmtpSender(SmtpConfig.from_settings(gw.settings))
    gw.notifications = NotificationRules(gw, smtp, default_sender=gw.settings.mail_sender)
    gw.subscribe(
        EVENT_TYPES,
        gw.notifications.handle_events,
        name=SUBSCRIBER,
        from_now=True,
        batch=True,
        linger=gw.settings.builtin_linger_seconds,
    )
