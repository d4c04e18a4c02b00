"""Stakeholder notifications: "when a customer joins group X, mail these people or call
this webhook". See :mod:`groupwire.notify.rules` and docs/use-cases.md."""

from __future__ import annotations

from typing import Any

from groupwire.notify.rules import NotificationRule, NotificationRules


def notifications_of(gw: Any) -> NotificationRules:
    """The notification-rule service of a Groupwire instance (``gw.notifications``), typed."""
    rules = getattr(gw, "notifications", None)
    if not isinstance(rules, NotificationRules):
        raise RuntimeError("this Groupwire instance has no notify plugin registered")
    return rules


__all__ = ["NotificationRule", "NotificationRules", "notifications_of"]
