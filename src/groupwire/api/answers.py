"""The answer to a change made through the service: rendered in the change's own transaction
when an ``Idempotency-Key`` stores it, after the commit otherwise.

A write route builds a :class:`ChangeAnswer` from a renderer ``(subject, connection) ->
Response``, hands it to the service in the change's ``Context`` (``answer.on(context)``) and
returns ``answer.response()``:

* with a key, the unit of work calls the renderer just before the commit with the
  transaction's connection (relations such as ``fields=*customers`` are read there); the
  status, headers and body bytes are written on the key's row in that same transaction, and
  the route sends exactly those bytes, so that a replay is byte-identical;
* without one, the unit of work hands over the committed subject and the route renders it
  after the commit (``connection=None``: relations read then, see ``render.committed_json``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlalchemy.engine import Connection
from starlette.responses import Response

from groupwire.domain.changes import Answer, Context

REPLAYED_HEADER = "idempotent-replayed"
_NOT_STORED = ("content-length",)  # recomputed from the body when sent

Render = Callable[[Any, Connection | None], Response]


class ChangeAnswer:
    """A route's :class:`~groupwire.domain.changes.Answering`: renders the change's subject
    with ``render`` and remembers what it answered."""

    def __init__(self, render: Render) -> None:
        self._render = render
        self._subject: Any = None
        self._told = False
        self._stored: Answer | None = None

    def on(self, context: Context) -> Context:
        """``context`` with this answer: what the route hands to the service."""
        return replace(context, answer=self)

    def __call__(self, subject: Any, connection: Connection | None) -> Answer | None:
        self._subject, self._told = subject, True
        self._stored = None if connection is None else stored(self._render(subject, connection))
        return self._stored

    def response(self) -> Response:
        """The answer to send: the stored one as stored, or the subject rendered now."""
        if self._stored is not None:
            return as_response(self._stored, replay=False)
        if not self._told:
            raise RuntimeError("the change was not handed this answer")
        return self._render(self._subject, None)


def stored(response: Response) -> Answer:
    """What is kept of a response: its status, headers and body's bytes."""
    headers = {k: v for k, v in response.headers.items() if k not in _NOT_STORED}
    return Answer(response.status_code, headers, bytes(response.body))


def as_response(answer: Answer, *, replay: bool) -> Response:
    """``answer`` as a response, marked ``Idempotent-Replayed: true`` when it is a replay."""
    headers = dict(answer.headers)
    if replay:
        headers[REPLAYED_HEADER] = "true"
    return Response(answer.body, status_code=answer.status, headers=headers)
