"""Sending one email over SMTP with aiosmtplib, and checking addresses before they are saved.

:meth:`SmtpSender.send` returns once the server accepted the message (its ``250`` reply to
``DATA``) and raises on anything else, a temporary ``4xx`` refusal included: the subscriber
that called it fails, so the relay retries it and, in the end, dead-letters it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any

import aiosmtplib

from groupwire.domain.errors import InvalidData
from groupwire.mail.templates import RenderedMail

_ADDRESS = re.compile(
    r"^[^@\s<>\",;]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.[A-Za-z0-9-]{2,}$"
)
MAX_RECIPIENTS = 50


def check_address(value: Any, name: str = "email") -> str:
    """An email address (``jane@example.com``), stripped; ``InvalidData`` otherwise."""
    if not isinstance(value, str):
        raise InvalidData(f"{name} must be a string")
    address = value.strip()
    if len(address) > 320 or not _ADDRESS.match(address) or ".." in address:
        raise InvalidData(f"{name} is not a valid email address: {value!r}")
    return address


def check_sender(value: Any, name: str = "sender") -> str:
    """A From address, bare or with a display name: ``Shop <hello@shop.example>``."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidData(f"{name} must be an email address")
    if any(c in value for c in "\r\n"):
        raise InvalidData(f"{name} must be on one line")
    display, address = parseaddr(value.strip())
    check_address(address, name)
    return value.strip() if display else address


def check_addresses(values: Any, name: str = "emails") -> list[str]:
    """A list of distinct addresses (order kept)."""
    if not isinstance(values, list | tuple):
        raise InvalidData(f"{name} must be a list of email addresses")
    if len(values) > MAX_RECIPIENTS:
        raise InvalidData(f"{name} holds more than {MAX_RECIPIENTS} addresses")
    found: list[str] = []
    for value in values:
        address = check_address(value, name)
        if address.lower() not in (a.lower() for a in found):
            found.append(address)
    return found


def build_message(
    mail: RenderedMail,
    *,
    sender: str,
    recipients: Sequence[str],
    message_id: str,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """A MIME message: text, plus an HTML alternative when there is one.

    ``message_id`` is derived from the event, so a copy sent twice (see docs/use-cases.md) has
    the same ``Message-ID`` and mail clients can show it once.
    """
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id
    for key, value in (headers or {}).items():
        message[key] = value
    message.set_content(mail.body)
    if mail.html_body is not None:
        message.add_alternative(mail.html_body, subtype="html")
    return message


def message_id_for(event_id: str, purpose: str, sender: str) -> str:
    """``<event.purpose@domain-of-sender>``: stable for one event and purpose."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "groupwire.invalid"
    return f"<{event_id}.{purpose}@{domain}>"


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "localhost"
    port: int = 25
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    tls: bool = False
    timeout: float = 30.0

    @classmethod
    def from_settings(cls, settings: Any) -> SmtpConfig:
        password = settings.smtp_password
        if password is not None and hasattr(password, "get_secret_value"):
            password = password.get_secret_value()
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=password,
            starttls=settings.smtp_starttls,
            tls=settings.smtp_tls,
            timeout=settings.smtp_timeout,
        )


class SmtpSender:
    """Sends messages through one SMTP server (a new connection per message)."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def send(self, message: EmailMessage) -> None:
        """Send and wait for the server's acceptance, from a thread with no running loop."""
        asyncio.run(self.send_async(message))

    async def send_async(self, message: EmailMessage) -> None:
        c = self.config
        await aiosmtplib.send(
            message,
            hostname=c.host,
            port=c.port,
            username=c.username,
            password=c.password,
            start_tls=c.starttls,
            use_tls=c.tls,
            timeout=c.timeout,
        )


def bare_address(sender: str) -> str:
    """``Shop <a@b.c>`` → ``a@b.c``."""
    return parseaddr(sender)[1]


__all__ = [
    "SmtpConfig",
    "SmtpSender",
    "bare_address",
    "build_message",
    "check_address",
    "check_addresses",
    "check_sender",
    "message_id_for",
]
