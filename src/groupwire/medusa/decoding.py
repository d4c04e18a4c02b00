"""pgoutput messages -> :class:`MedusaTransaction` values, keeping the relations seen so far.

Each call of the SQL peek function is a new decoding session, in which PostgreSQL describes
each relation again (a Relation message) before its first row change; the cache here is only
filled by those messages, so a table changed by ALTER TABLE is described anew by the server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from groupwire.medusa import pgoutput
from groupwire.medusa.mapping import MedusaTransaction, RowChange
from groupwire.medusa.rows import typed
from groupwire.medusa.slot import TABLES

log = logging.getLogger("groupwire.medusa")


class TransactionDecoder:
    """Turns the rows of ``pg_logical_slot_peek_binary_changes`` into whole transactions."""

    def __init__(self, schema: str = "public") -> None:
        self.schema = schema
        self.relations: dict[int, pgoutput.Relation] = {}

    def transactions(self, rows: Iterable[tuple[int, int, bytes]]) -> Iterator[MedusaTransaction]:
        begin: pgoutput.Begin | None = None
        changes: list[RowChange] = []
        for _lsn, _xid, data in rows:
            message = pgoutput.decode(data)
            if isinstance(message, pgoutput.Begin):
                begin, changes = message, []
            elif isinstance(message, pgoutput.Commit):
                if begin is None:
                    raise pgoutput.DecodeError("a Commit without its Begin")
                yield MedusaTransaction(begin.xid, message.end_lsn, message.commit_time, changes)
                begin, changes = None, []
            elif isinstance(message, pgoutput.Relation):
                self.relations[message.oid] = message
            elif isinstance(message, pgoutput.Insert | pgoutput.Update | pgoutput.Delete):
                change = self._row_change(message)
                if change is not None:
                    changes.append(change)
            elif isinstance(message, pgoutput.Truncate):
                log.warning("TRUNCATE of Medusa tables is not captured (%s)", message)
        if begin is not None:
            raise pgoutput.DecodeError("the stream ended inside a transaction")

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
