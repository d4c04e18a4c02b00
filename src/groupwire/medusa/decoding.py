"""pgoutput messages -> :class:`MedusaTransaction` values, keeping the relations seen so far.

Each decoding session (a replication stream, or one call of the SQL peek function) describes
each relation again (a Relation message) before its first row change; the cache here is only
filled by those messages, so a table changed by ALTER TABLE is described anew by the server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator

from groupwire.medusa import pgoutput
from groupwire.medusa.mapping import MedusaTransaction, RowChange
from groupwire.medusa.rows import typed
from groupwire.medusa.slot import TABLES

log = logging.getLogger("groupwire.medusa")


class TransactionDecoder:
    """Gathers the messages of one session into whole transactions, in commit order."""

    def __init__(self, schema: str = "public") -> None:
        self.schema = schema
        self.relations: dict[int, pgoutput.Relation] = {}
        self._begin: pgoutput.Begin | None = None
        self._begun_at = 0.0
        self._changes: list[RowChange] = []

    @property
    def in_transaction(self) -> bool:
        """A Begin was read and its Commit not yet."""
        return self._begin is not None

    def feed(self, data: bytes) -> MedusaTransaction | None:
        """Take one message; returns the transaction its Commit completes, else None."""
        message = pgoutput.decode(data)
        if isinstance(message, pgoutput.Insert | pgoutput.Update | pgoutput.Delete):
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
        elif isinstance(message, pgoutput.Truncate):
            log.warning("TRUNCATE of Medusa tables is not captured (%s)", message)
        return None

    def transactions(self, rows: Iterable[tuple[int, int, bytes]]) -> Iterator[MedusaTransaction]:
        """The transactions of ``(lsn, xid, message)`` rows (as the SQL peek function gives
        them); the rows must end at a transaction boundary."""
        for _lsn, _xid, data in rows:
            transaction = self.feed(data)
            if transaction is not None:
                yield transaction
        if self._begin is not None:
            raise pgoutput.DecodeError("the stream ended inside a transaction")

    def reset(self) -> None:
        """Forget a transaction in progress and the relations (a new session starts)."""
        self.relations.clear()
        self._begin, self._changes = None, []

    def _row_change(
        self, message: pgoutput.Insert | pgoutput.Update | pgoutput.Delete
    ) -> RowChange | None:
        relation = self.relations.get(message.relation_oid)
        if relation is None:
            raise pgoutput.DecodeError(f"a row change of unknown relation {message.relation_oid}")
        if relation.namespace != self.schema or relation.name not in TABLES:
            return None
        if isinstance(message, pgoutput.Insert):
            return RowChange(relation.name, "insert", typed(relation, message.new))
        if isinstance(message, pgoutput.Update):
            return RowChange(relation.name, "update", typed(relation, message.new))
        old = message.old if message.old is not None else message.key
        return RowChange(relation.name, "delete", typed(relation, old or ()))


__all__ = ["TransactionDecoder"]
