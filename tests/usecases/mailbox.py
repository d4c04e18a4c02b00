"""A real SMTP server on 127.0.0.1 for the tests (aiosmtpd), recording every accepted message.

``Mailbox.refuse(n, "451 ...")`` makes the next ``n`` DATA commands fail with that reply;
``Mailbox.hold()`` keeps every DATA command waiting until ``release()``: a slow mail server.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content()).replace("\r\n", "\n")

    @property
    def html(self) -> str | None:
        part = self.message.get_body(preferencelist=("html",))
        return None if part is None else str(part.get_content()).replace("\r\n", "\n")


class Mailbox:
    """The aiosmtpd handler: stores messages, refuses or holds them on demand."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.refused = 0
        self.in_data = threading.Event()
        self._refusals: deque[str] = deque()
        self._gate = threading.Event()
        self._gate.set()
        self._lock = threading.Lock()

    def refuse(self, count: int, reply: str = "451 4.3.0 Try again later") -> None:
        with self._lock:
            self._refusals.extend([reply] * count)

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.in_data.set()
        if not self._gate.is_set():
            await asyncio.get_running_loop().run_in_executor(None, self._gate.wait, 30)
        with self._lock:
            if self._refusals:
                self.refused += 1
                return self._refusals.popleft()
            message = message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(message, EmailMessage)
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.received) >= count:
                return True
            time.sleep(0.01)
        return len(self.received) >= count


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SmtpServer:
    """``with SmtpServer() as smtp: smtp.port, smtp.mailbox``."""

    def __init__(self) -> None:
        self.mailbox = Mailbox()
        self.port = free_port()
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.mailbox.release()
        self._controller.stop()
