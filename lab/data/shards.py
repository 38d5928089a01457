"""Token shards on disk: packed tokens cut into fixed-size ArrayRecord records, read by random access.

A shard file holds one split's packed tokens of a range of documents, as records of
`RECORD_TOKENS` tokens (the last one shorter), written with `group_size:1` so that any
record is one seek (grain's requirement for random access). The global token stream is
the shards' tokens in shard order; a position maps to (shard, record, offset) through two
cumulative sums over the shards, so the index costs O(shards), not O(tokens).

`ShardedTokens.windows` gathers any set of windows with one ArrayRecord `read` per shard
(the reader grain's `ArrayRecordDataSource` uses): memory stays at one batch's records
whatever the corpus size.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

# A window of ctx+1 tokens touches at most ceil((ctx+1)/RECORD_TOKENS)+1 records. ArrayRecord
# keeps an index entry per record in memory (~50 bytes, measured: 1M records, +54 MB), so the
# record size sets the loader's only corpus-proportional memory: 8,192 tokens -> ~6 MB per 1e9
# tokens; 2,048 was 11% faster to read but 4x that.
RECORD_TOKENS = 8192
# group_size:1 = every record its own chunk (random access); zstd level 1 decodes at GB/s
WRITER_OPTIONS = "group_size:1,zstd:1"
READER_OPTIONS = "readahead_buffer_size:0"  # random access: no read-ahead (as grain's source)


class ShardWriter:
    """Appends tokens to one ArrayRecord file in records of exactly RECORD_TOKENS (last: the rest)."""

    def __init__(self, path: str, dtype: type[np.unsignedinteger]) -> None:
        from array_record.python.array_record_module import ArrayRecordWriter

        self.path = path
        self.dtype = np.dtype(dtype)
        self.tokens = 0
        self.records = 0
        self._writer = ArrayRecordWriter(path, WRITER_OPTIONS)
        self._sha = hashlib.sha256()
        self._pending: list[np.ndarray] = []
        self._pending_tokens = 0

    def add(self, ids: np.ndarray) -> None:
        """Append ids (any integer dtype; they must fit this shard's dtype)."""
        ids = np.ascontiguousarray(ids, dtype=self.dtype)
        self._sha.update(ids.tobytes())
        self.tokens += ids.size
        self._pending.append(ids)
        self._pending_tokens += ids.size
        if self._pending_tokens >= RECORD_TOKENS:
            buffer = np.concatenate(self._pending)
            full = buffer.size // RECORD_TOKENS * RECORD_TOKENS
            for start in range(0, full, RECORD_TOKENS):
                self._write(buffer[start : start + RECORD_TOKENS])
            rest = buffer[full:]
            self._pending, self._pending_tokens = [rest], rest.size

    def _write(self, record: np.ndarray) -> None:
        self._writer.write(record.tobytes())
        self.records += 1

    def close(self) -> dict[str, Any]:
        """Flush the last partial record; the shard's token count, record count and sha256."""
        if self._pending_tokens:
            self._write(np.concatenate(self._pending))
        self._pending, self._pending_tokens = [], 0
        self._writer.close()
        return {"tokens": self.tokens, "records": self.records, "sha256": self._sha.hexdigest()}


class ShardedTokens:
    """The concatenated tokens of several shard files, read by window (never loaded whole).

    Quacks like the 1-D token array `TokenStream` takes: `shape` and `windows(start, length)`.
    Each batch reads the records its windows touch with one `ArrayRecordReader.read(positions)`
    per shard, on the calling thread: the reader and options of grain's
    `ArrayRecordDataSource`, without its `__getitems__`, which starts a new thread pool per
    call (measured: +70 MB RSS of per-thread malloc arenas over the first ~700 batches, and
    half the speed on 2 cores).
    """

    def __init__(self, paths: list[str], tokens: list[int], dtype: str) -> None:
        keep = [i for i, n in enumerate(tokens) if n > 0]  # an empty shard has no record to read
        self.dtype = np.dtype(dtype)
        counts = np.asarray([tokens[i] for i in keep], dtype=np.int64)
        self.shape = (int(counts.sum()),)
        self._token_starts = np.concatenate([[0], np.cumsum(counts)])
        self._record_starts = np.concatenate([[0], np.cumsum(-(-counts // RECORD_TOKENS))])
        self._paths = [paths[i] for i in keep]
        self._readers: list[Any] = [None] * len(keep)  # opened on first use

    def _reader(self, shard: int) -> Any:
        if self._readers[shard] is None:
            from array_record.python.array_record_module import ArrayRecordReader

            self._readers[shard] = ArrayRecordReader(
                self._paths[shard], READER_OPTIONS, file_reader_buffer_size=32768
            )
        return self._readers[shard]

    def _records(self, keys: np.ndarray) -> list[bytes]:
        """Records by global key (sorted, unique), grouped into one read per shard."""
        shard_K = np.searchsorted(self._record_starts, keys, side="right") - 1
        records: list[bytes] = []
        for shard in np.unique(shard_K).tolist():
            positions = keys[shard_K == shard] - self._record_starts[shard]
            records.extend(self._reader(shard).read(positions.tolist()))
        return records

    def windows(self, start_W: np.ndarray, length: int) -> np.ndarray:
        """int32 [*start_W.shape, length]: tokens[start : start + length] for every start."""
        start_W = np.asarray(start_W, dtype=np.int64)
        pos_WxL = start_W[..., None] + np.arange(length, dtype=np.int64)
        if pos_WxL.size == 0:
            return np.zeros(pos_WxL.shape, dtype=np.int32)
        if pos_WxL.min() < 0 or pos_WxL.max() >= self.shape[0]:
            raise IndexError(f"window outside the {self.shape[0]} tokens of the shards")
        shard = np.searchsorted(self._token_starts, pos_WxL, side="right") - 1
        within = pos_WxL - self._token_starts[shard]
        key = self._record_starts[shard] + within // RECORD_TOKENS
        keys, inverse = np.unique(key, return_inverse=True)
        arrays = [np.frombuffer(r, dtype=self.dtype) for r in self._records(keys)]
        base = np.concatenate([[0], np.cumsum([a.size for a in arrays])[:-1]])
        flat = np.concatenate(arrays)
        out = flat[base[inverse.reshape(key.shape)] + within % RECORD_TOKENS]
        return out.astype(np.int32)

    def read(self, start: int, stop: int) -> np.ndarray:
        """int32 tokens[start:stop] (audits and tests)."""
        if stop <= start:
            return np.zeros(0, dtype=np.int32)
        return self.windows(np.asarray([start]), stop - start)[0]
