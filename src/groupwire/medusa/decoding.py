"""pgoutput messages -> :class:`MedusaTransaction` values, keeping the relations seen so far.

Each decoding session (each replication stream capture starts, see ``stream.py``) describes
each relation again (a Relation message) before its first row change; the cache here is only
filled by those messages, so a table changed by ALTER TABLE is described anew by the server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import Final

from groupwire.medusa import pgoutput
from groupwire.medusa.mapping import MedusaTransaction, RowChange
from groupwire.medusa.rows import RowLayout
from groupwire.medusa.slot import TABLES

log = logging.getLogger("groupwire.medusa")


class TransactionDecoder:
    """Gathers the messages of one session into whole transactions, in commit order.

    The transaction in progress can be read while it comes in (:attr:`begin`,
    :attr:`changes`): capture applies a large one chunk by chunk as the server sends it.
    """

    def __init__(self, schema: str = "public") -> None:
        self.schema = schema
        self.relations: dict[int, pgoutput.Relation] = {}
        # per relation: its row layout when it is one of capture's tables, else None
        self._ours: dict[int, RowLayout | None] = {}
        self._begin: pgoutput.Begin | None = None
        self._begun_at = 0.0
        self._changes: list[RowChange] = []

    @property
    def in_transaction(self) -> bool:
        """A Begin was read and its Commit not yet."""
        return self._begin is not None

    @property
    def begin(self) -> pgoutput.Begin | None:
        """The Begin of the transaction in progress."""
        return self._begin

    @property
    def changes(self) -> list[RowChange]:
        """The row changes of the transaction in progress read so far (the list grows)."""
        return self._changes

    def feed(self, data: bytes) -> MedusaTransaction | None:
        """Take one message; returns the transaction its Commit completes, else None."""
        if data[:1] == b"I":  # most messages of a large transaction: no message object
            oid, values = pgoutput.insert_row(data)
            ours = self._ours.get(oid, _UNKNOWN)
            if ours is _UNKNOWN:
                raise pgoutput.DecodeError(f"a row change of unknown relation {oid}")
            if ours is not None:
                self._changes.append(RowChange(ours.relation.name, "insert", ours, values))
            return None
        message = pgoutput.decode(data)
        if isinstance(message, pgoutput.Update | pgoutput.Delete):
            change = self._row_change(message)
            if change is not None:
                self._changes.append(change)
        elif isinstance(message, pgoutput.Begin):
            if self._begin is not None:
                raise pgoutput.DecodeError("a Begin inside a transaction")
            self._begin, self._changes = message, []
            self._begun_at = time.perf_counter()
        elif isinstance(message, pgoutput.Commit):
            begin, changes = self._begin, self._changes
            if begin is None:
                raise pgoutput.DecodeError("a Commit without its Begin")
            self._begin, self._changes = None, []
            return MedusaTransaction(
                begin.xid, message.end_lsn, message.commit_time, changes, self._begun_at
            )
        elif isinstance(message, pgoutput.Relation):
            self.relations[message.oid] = message
            captured = message.namespace == self.schema and message.name in TABLES
            self._ours[message.oid] = RowLayout(message) if captured else None
        elif isinstance(message, pgoutput.Truncate):
            log.warning("TRUNCATE of Medusa tables is not captured (%s)", message)
        return None

    def transactions(self, rows: Iterable[tuple[int, int, bytes]]) -> Iterator[MedusaTransaction]:
        """The transactions of ``(lsn, xid, message)`` rows (the layout of
        ``pg_logical_slot_peek_binary_changes``, which capture does not use: a way to decode
        a list of messages at once); the rows must end at a transaction boundary."""
        for _lsn, _xid, data in rows:
            transaction = self.feed(data)
            if transaction is not None:
                yield transaction
        if self._begin is not None:
            raise pgoutput.DecodeError("the stream ended inside a transaction")

    def reset(self) -> None:
        """Forget a transaction in progress and the relations (a new session starts)."""
        self.relations.clear()
        self._ours.clear()
        self._begin, self._changes = None, []

    def _row_change(self, message: pgoutput.Update | pgoutput.Delete) -> RowChange | None:
        ours = self._ours.get(message.relation_oid, _UNKNOWN)
        if ours is _UNKNOWN:
            raise pgoutput.DecodeError(f"a row change of unknown relation {message.relation_oid}")
        if ours is None:
            return None
        name = ours.relation.name
        if isinstance(message, pgoutput.Update):
            return RowChange(name, "update", ours, message.new)
        old = message.old if message.old is not None else message.key
        return RowChange(name, "delete", ours, old or ())


_UNKNOWN: Final = RowLayout(pgoutput.Relation(0, "", "", "n", ()))  # a relation not described


__all__ = ["TransactionDecoder"]
