"""The response cache's in-process structures: an entry, the byte-bounded LRU of packed entries that
is the memory tier.

Kept apart from cache.py (the stage: the caching rule, the key, lookups and the write queue) because
these are plain data structures with their own memory arithmetic, tested on their own.
"""

from __future__ import annotations

import math
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

ENTRY_OVERHEAD = 1536  # bytes an entry costs beyond its body in a serving process: object, key, LRU
# node (~440) and what the allocator cannot reuse under churn (measured RSS)
QUEUED_OVERHEAD = 448  # bytes a row waiting for the disk holds beyond its body: the tuple (128), its
# key (81), id (36), size (28), three floats (72), the body's header (33), a list slot, and its slot
# in the dict that finds it by key (~45 with the dict's spare room)

# A row: what the disk tier stores, and what the write queue holds (store.cache_sql.COLUMNS order):
# (id, key, tenant, model, served_model, provider, created, expires, cost_usd, size, body)
Row = tuple[int, str, str, str, "str | None", "str | None", float, float, "float | None", int, bytes]


@dataclass(slots=True)
class Entry:
    key: str  # hex digest of tenant + canonical request
    id: int  # its first 64 bits, signed: the row id on disk
    tenant: str
    model: str  # as requested ("auto" included)
    served_model: str | None  # the registry model that answered
    provider: str | None
    created: float  # wall clock
    expires: float
    cost_usd: float | None  # what the answer cost; a hit saves this much
    body: bytes  # the chat.completion as served

    @classmethod
    def of_row(cls, row: Sequence[Any]) -> Entry:
        """From a row (Row's fields), as the write queue or the disk gives it."""
        id_, key, tenant, model, served_model, provider, created, expires, cost_usd, _, body = row
        return cls(key, id_, tenant, model, served_model, provider, created, expires, cost_usd, bytes(body))

    @property
    def size(self) -> int:
        """What it costs in the memory tier."""
        return len(self.body) + ENTRY_OVERHEAD

    def row(self) -> Row:
        return (
            self.id,
            self.key,
            self.tenant,
            self.model,
            self.served_model,
            self.provider,
            self.created,
            self.expires,
            self.cost_usd,
            len(self.body),
            self.body,
        )


def queued_size(row: Row) -> int:
    """What a row costs while it waits in the disk tier's write queue (the memory tier's packed
    copy is counted there)."""
    return row[9] + QUEUED_OVERHEAD


class MemoryLRU:
    """Entries by key, least recently used first, evicted to stay under max_bytes.

    Each entry is kept as one packed bytes object (its fields, then the body) of at least
    _MIN_BLOB bytes, so it lives outside Python's small-object allocator: tens of thousands of
    long-lived small objects (the entry, its floats, its body), freed in LRU order, left that
    allocator's pools full of scattered holes, and every object a request allocates landed in one
    (measured: 30-45 us more CPU per request with a full 64 MiB tier than with none)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.evictions = 0
        self._entries: OrderedDict[str, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: float) -> Entry | None:
        blob = self._entries.get(key)
        if blob is None:
            return None
        if _expires(blob) <= now:
            self.remove(key)
            return None
        self._entries.move_to_end(key)
        return _unpack(key, blob)

    def put(self, entry: Entry) -> None:
        self.put_row(entry.row())

    def put_row(self, row: Row) -> None:
        """Keep an entry given as its disk row (the store path makes no Entry)."""
        size = row[9] + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        key = row[1]
        entries = self._entries
        old = entries.pop(key, None)
        if old is not None:
            self.bytes -= _size(old)
        entries[key] = _pack(row)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = entries.popitem(last=False)
            self.bytes -= _size(old)
            self.evictions += 1

    def remove(self, key: str) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= _size(old)

    def entries(self) -> Iterator[Entry]:
        for key, blob in self._entries.items():
            yield _unpack(key, blob)

    def purge(self, match: Callable[[Entry], bool]) -> int:
        doomed = [entry.key for entry in self.entries() if match(entry)]
        for key in doomed:
            self.remove(key)
        return len(doomed)


# A packed entry: id, created, expires, cost (NaN for None), body length, then the four strings'
# lengths (0xFFFFFFFF for None), the strings (UTF-8), the body, and zeros up to _MIN_BLOB.
_HEAD = struct.Struct("<qdddI4I")
_MIN_BLOB = 520  # above the small-object allocator's 512-byte limit
_NONE = 0xFFFFFFFF


def _pack(row: Row) -> bytes:
    id_, _, tenant, model, served_model, provider, created, expires, cost, size, body = row
    # tenant and model are always strings; served_model and provider may be None
    t, m = tenant.encode(), model.encode()
    s = served_model.encode() if served_model is not None else b""
    p = provider.encode() if provider is not None else b""
    head = _HEAD.pack(
        id_,
        created,
        expires,
        math.nan if cost is None else cost,
        size,
        len(t),
        len(m),
        _NONE if served_model is None else len(s),
        _NONE if provider is None else len(p),
    )
    short = _MIN_BLOB - (_HEAD.size + len(t) + len(m) + len(s) + len(p) + size)
    return b"".join((head, t, m, s, p, body, bytes(short))) if short > 0 else b"".join((head, t, m, s, p, body))


def _expires(blob: bytes) -> float:
    return float(_EXPIRES.unpack_from(blob, 16)[0])


def _size(blob: bytes) -> int:
    return int(_BODY_LEN.unpack_from(blob, 32)[0]) + ENTRY_OVERHEAD


_EXPIRES = struct.Struct("<d")
_BODY_LEN = struct.Struct("<I")


def _unpack(key: str, blob: bytes) -> Entry:
    id_, created, expires, cost, body_len, *lengths = _HEAD.unpack_from(blob)
    at = _HEAD.size
    texts: list[str | None] = []
    for n in lengths:
        if n == _NONE:
            texts.append(None)
        else:
            texts.append(blob[at : at + n].decode())
            at += n
    tenant, model, served_model, provider = texts
    return Entry(
        key,
        id_,
        tenant or "",
        model or "",
        served_model,
        provider,
        created,
        expires,
        None if math.isnan(cost) else cost,
        blob[at : at + body_len],
    )
