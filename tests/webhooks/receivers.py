"""Real HTTP receivers on 127.0.0.1 for webhook tests: they record each delivery and check
its signature with the ``standardwebhooks`` library, as a CRM would."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    verify_error: str | None

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """``with Receiver() as r: ... r.url``; answers ``status`` (or the next of ``statuses``, or
    what ``status_for(delivery)`` says when it says something)."""

    def __init__(
        self,
        *,
        status: int = 200,
        statuses: list[int] | None = None,
        secret: str | None = None,
        hang: bool = False,
        response_body: bytes = b"ok",
        headers: dict[str, str] | None = None,
        status_for: Callable[[Received], int | None] | None = None,
        delay: float = 0.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.delay = delay
        self.tls = tls
        self.status = status
        self.status_for = status_for
        self.statuses = list(statuses or [])
        self.secret = secret
        self.hang = hang
        self.response_body = response_body
        self.response_headers = dict(headers or {})
        self.received: list[Received] = []
        self.hanging = 0
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()

    def event_ids(self) -> list[str]:
        with self._lock:
            return [r.json["id"] for r in self.received]

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        return wait_until(lambda: len(self.received) >= count, timeout)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified, problem = receiver._verify(body, headers)
                if receiver.delay:
                    time.sleep(receiver.delay)
                if receiver.hang:
                    with receiver._lock:
                        receiver.hanging += 1
                    receiver.released.wait(60)
                got = Received(self.path, headers, body, verified, problem)
                with receiver._lock:
                    receiver.received.append(got)
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.status
                    if receiver.status_for is not None:
                        status = receiver.status_for(got) or status
                self.send_response(status)
                for name, value in receiver.response_headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(receiver.response_body)))
                self.end_headers()
                self.wfile.write(receiver.response_body)

        return Handler

    def _verify(self, body: bytes, headers: dict[str, str]) -> tuple[bool, str | None]:
        if not self.secret:
            return False, "no secret to verify with"
        try:
            Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError as error:
            return False, str(error)
        return True, None


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
