"""A decoder of PostgreSQL's ``pgoutput`` logical replication messages (protocol version 1).

The format is documented in PostgreSQL's "Logical Replication Message Formats". Each message
is the payload of one ``XLogData`` message of the replication stream (``stream.py``; the SQL
function ``pg_logical_slot_peek_binary_changes`` returns the same bytes, one ``bytea`` value
a message): a type byte, then big-endian fields. Only what capture needs is kept: transaction
boundaries (Begin, Commit), relation descriptions (Relation, the column names and type OIDs
later row messages refer to) and row changes (Insert, Update, Delete, Truncate). Origin and
Type messages are decoded to small records so that a stream containing them never fails;
stream (protocol 2+) and logical decoding messages are refused, since protocol 1 without
``messages`` never sends them.

Column values stay as the server sent them: text (``str``), binary (``bytes``), ``None`` for
SQL NULL, or :data:`UNCHANGED` for a TOASTed value an UPDATE did not change (the new row then
does not carry it). Typing them is the caller's business (see ``groupwire.medusa.rows``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

POSTGRES_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)


class _Unchanged:
    """The value of a TOASTed column an UPDATE did not change ('u' in a tuple)."""

    _instance: _Unchanged | None = None

    def __new__(cls) -> _Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged()

Value = str | bytes | None | _Unchanged


class DecodeError(ValueError):
    """Bytes that are not a pgoutput protocol 1 message."""


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int  # the LSN of the transaction's commit record
    commit_time: datetime
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    flags: int
    commit_lsn: int
    end_lsn: int  # the end of the commit record: where a consumer confirms it
    commit_time: datetime


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int
    part_of_key: bool


@dataclass(frozen=True, slots=True)
class Relation:
    oid: int
    namespace: str
    name: str
    replica_identity: str  # d(efault), n(othing), f(ull), i(ndex)
    columns: tuple[Column, ...]


@dataclass(frozen=True, slots=True)
class Insert:
    relation_oid: int
    new: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Update:
    relation_oid: int
    new: tuple[Value, ...]
    old: tuple[Value, ...] | None = None  # the whole old row (REPLICA IDENTITY FULL)
    key: tuple[Value, ...] | None = None  # the old key, when the key changed


@dataclass(frozen=True, slots=True)
class Delete:
    relation_oid: int
    old: tuple[Value, ...] | None = None  # the whole old row (REPLICA IDENTITY FULL)
    key: tuple[Value, ...] | None = None  # the key columns only (others None)


@dataclass(frozen=True, slots=True)
class Truncate:
    relation_oids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True, slots=True)
class Origin:
    commit_lsn: int
    name: str


@dataclass(frozen=True, slots=True)
class TypeInfo:
    oid: int
    namespace: str
    name: str


Message = Begin | Commit | Relation | Insert | Update | Delete | Truncate | Origin | TypeInfo


def timestamp(microseconds: int) -> datetime:
    """A pgoutput timestamp: microseconds since 2000-01-01 UTC."""
    return POSTGRES_EPOCH + timedelta(microseconds=microseconds)


def decode(data: bytes | bytearray | memoryview) -> Message:
    """One message, from the bytes of one ``pg_logical_slot_*_binary_changes`` row."""
    reader = _Reader(bytes(data))
    kind = reader.byte()
    try:
        decoder = _DECODERS[kind]
    except KeyError:
        raise DecodeError(f"unsupported pgoutput message type {chr(kind)!r}") from None
    message = decoder(reader)
    if reader.remaining():
        raise DecodeError(f"{reader.remaining()} trailing bytes after a {chr(kind)!r} message")
    return message


class _Reader:
    __slots__ = ("data", "offset")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def _take(self, fmt: struct.Struct) -> Any:
        try:
            (value,) = fmt.unpack_from(self.data, self.offset)
        except struct.error as error:
            raise DecodeError(f"message cut short at byte {self.offset}") from error
        self.offset += fmt.size
        return value

    def byte(self) -> int:
        return int(self._take(_U8))

    def int16(self) -> int:
        return int(self._take(_I16))

    def int32(self) -> int:
        return int(self._take(_I32))

    def uint32(self) -> int:
        return int(self._take(_U32))

    def int64(self) -> int:
        return int(self._take(_I64))

    def string(self) -> str:
        end = self.data.find(b"\x00", self.offset)
        if end < 0:
            raise DecodeError(f"unterminated string at byte {self.offset}")
        value = self.data[self.offset : end].decode("utf-8")
        self.offset = end + 1
        return value

    def raw(self, length: int) -> bytes:
        if length < 0 or self.offset + length > len(self.data):
            raise DecodeError(f"message cut short at byte {self.offset}")
        value = self.data[self.offset : self.offset + length]
        self.offset += length
        return value

    def remaining(self) -> int:
        return len(self.data) - self.offset

    def tuple_data(self) -> tuple[Value, ...]:
        values, self.offset = _tuple_at(self.data, self.offset)
        return values


def _tuple_at(data: bytes, offset: int) -> tuple[tuple[Value, ...], int]:
    """TupleData at ``offset``: its values and the offset after it.

    The hot loop of a large transaction (one call per row): locals, no method calls."""
    values: list[Value] = []
    append, length_at, size = values.append, _I32.unpack_from, len(data)
    try:
        (count,) = _I16.unpack_from(data, offset)
        offset += 2
        for _ in range(count):
            kind = data[offset]
            if kind == 116 or kind == 98:  # 't'ext or 'b'inary: Int32 length, bytes
                (length,) = length_at(data, offset + 1)
                start = offset + 5
                offset = start + length
                if length < 0 or offset > size:
                    raise DecodeError(f"message cut short at byte {start}")
                value = data[start:offset]
                append(value.decode("utf-8") if kind == 116 else value)
            elif kind == 110:  # 'n'ull
                offset += 1
                append(None)
            elif kind == 117:  # 'u'nchanged TOASTed value
                offset += 1
                append(UNCHANGED)
            else:
                raise DecodeError(f"unknown column kind {chr(kind)!r} in tuple data")
    except (IndexError, struct.error) as error:
        raise DecodeError(f"message cut short at byte {offset}") from error
    return tuple(values), offset


def insert_row(data: bytes) -> tuple[int, tuple[Value, ...]]:
    """The relation OID and new row of an Insert message (``data`` starts with ``b"I"``),
    what :func:`decode` would put in an :class:`Insert`, without building the message: a
    batch of 10,000 rows is 10,000 of these."""
    try:
        oid, marker = _INSERT_HEAD.unpack_from(data, 1)
    except struct.error as error:
        raise DecodeError("message cut short at byte 1") from error
    if marker != 78:  # 'N'
        raise DecodeError("an Insert message without its new tuple")
    values, end = _tuple_at(data, 1 + _INSERT_HEAD.size)
    if end != len(data):
        raise DecodeError(f"{len(data) - end} trailing bytes after a 'I' message")
    return oid, values


_U8 = struct.Struct(">B")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_INSERT_HEAD = struct.Struct(">IB")  # relation OID, then 'N' (a new tuple follows)


def _begin(r: _Reader) -> Begin:
    return Begin(final_lsn=r.int64(), commit_time=timestamp(r.int64()), xid=r.uint32())


def _commit(r: _Reader) -> Commit:
    return Commit(
        flags=r.byte(), commit_lsn=r.int64(), end_lsn=r.int64(), commit_time=timestamp(r.int64())
    )


def _origin(r: _Reader) -> Origin:
    return Origin(commit_lsn=r.int64(), name=r.string())


def _relation(r: _Reader) -> Relation:
    oid, namespace, name = r.uint32(), r.string(), r.string()
    identity = chr(r.byte())
    columns = []
    for _ in range(r.int16()):
        flags = r.byte()
        columns.append(
            Column(
                name=r.string(),
                type_oid=r.uint32(),
                type_modifier=r.int32(),
                part_of_key=bool(flags & 1),
            )
        )
    return Relation(oid, namespace or "pg_catalog", name, identity, tuple(columns))


def _type(r: _Reader) -> TypeInfo:
    return TypeInfo(oid=r.uint32(), namespace=r.string(), name=r.string())


def _insert(r: _Reader) -> Insert:
    oid = r.uint32()
    if r.byte() != ord("N"):
        raise DecodeError("an Insert message without its new tuple")
    return Insert(oid, r.tuple_data())


def _update(r: _Reader) -> Update:
    oid = r.uint32()
    marker = r.byte()
    old = key = None
    if marker == ord("O"):
        old = r.tuple_data()
        marker = r.byte()
    elif marker == ord("K"):
        key = r.tuple_data()
        marker = r.byte()
    if marker != ord("N"):
        raise DecodeError("an Update message without its new tuple")
    return Update(oid, r.tuple_data(), old=old, key=key)


def _delete(r: _Reader) -> Delete:
    oid = r.uint32()
    marker = r.byte()
    if marker == ord("O"):
        return Delete(oid, old=r.tuple_data())
    if marker == ord("K"):
        return Delete(oid, key=r.tuple_data())
    raise DecodeError("a Delete message without its old key or row")


def _truncate(r: _Reader) -> Truncate:
    count = r.uint32()
    options = r.byte()
    oids = tuple(r.uint32() for _ in range(count))
    return Truncate(oids, cascade=bool(options & 1), restart_identity=bool(options & 2))


_DECODERS: dict[int, Callable[[_Reader], Message]] = {
    ord("B"): _begin,
    ord("C"): _commit,
    ord("O"): _origin,
    ord("R"): _relation,
    ord("Y"): _type,
    ord("I"): _insert,
    ord("U"): _update,
    ord("D"): _delete,
    ord("T"): _truncate,
}

__all__ = [
    "UNCHANGED",
    "Begin",
    "Column",
    "Commit",
    "DecodeError",
    "Delete",
    "Insert",
    "Message",
    "Origin",
    "Relation",
    "Truncate",
    "TypeInfo",
    "Update",
    "Value",
    "decode",
    "insert_row",
]
