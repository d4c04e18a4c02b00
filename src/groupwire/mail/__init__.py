"""Welcome emails: a Jinja2 template per customer group, sent over SMTP to each new member.

``gw.mail.set(group_id, subject=..., body=..., sender=...)`` configures a group; the built-in
plugin :mod:`groupwire.mail.plugin` sends the mail from a subscriber, at most once per
membership. See docs/use-cases.md.
"""

from __future__ import annotations

from typing import Any

from groupwire.mail.smtp import SmtpConfig, SmtpSender
from groupwire.mail.templates import MailTemplate, RenderedMail, check_template
from groupwire.mail.welcome import WelcomeEmail, WelcomeEmails


def mail_of(gw: Any) -> WelcomeEmails:
    """The welcome-email service of a Groupwire instance (``gw.mail``), typed."""
    mail = getattr(gw, "mail", None)
    if not isinstance(mail, WelcomeEmails):
        raise RuntimeError("this Groupwire instance has no mail plugin registered")
    return mail


__all__ = [
    "MailTemplate",
    "RenderedMail",
    "SmtpConfig",
    "SmtpSender",
    "WelcomeEmail",
    "WelcomeEmails",
    "check_template",
    "mail_of",
]
