"""A capped pool of unique training tokens, for measuring what repeated data costs.

`unique_tokens = U` in `[data]` trains on exactly U tokens of the training split: whole
documents taken in a seeded-hash order (spread over the corpus, unlike a prefix, which on
`stdlib` would be one or two large files), concatenated, and cut at U tokens. The held-out
split is untouched, so eval loss measures generalisation from the pool. The pool depends
only on the training split, U and the seed, and its settings enter the corpus fingerprint.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from lab.data.errors import DataError

POOL_VERSION = 1


def pool_order(doc_ids: list[str], seed: int) -> list[int]:
    """Document indices sorted by a seeded hash of their ids (independent of other documents)."""
    keys = [hashlib.sha256(f"pool\0{seed}\0{d}".encode()).digest()[:8] for d in doc_ids]
    return sorted(range(len(doc_ids)), key=lambda i: (keys[i], i))


def unique_pool(
    train_N: np.ndarray, doc_ids: list[str], eos_id: int, unique_tokens: int, seed: int
) -> np.ndarray:
    """The first `unique_tokens` tokens of the training documents in `pool_order`.

    Documents are located by their EOS terminators (packing is doc_tokens + [EOS]).
    """
    if unique_tokens > train_N.shape[0]:
        raise DataError(
            f"unique_tokens={unique_tokens:,} exceeds the {train_N.shape[0]:,} training tokens "
            "of the corpus; lower it or use a bigger corpus"
        )
    ends = np.flatnonzero(np.asarray(train_N) == eos_id) + 1
    if ends.size != len(doc_ids):
        raise DataError(
            f"found {ends.size} document ends for {len(doc_ids)} training documents; "
            "rebuild the corpus cache"
        )
    starts = np.concatenate([[0], ends[:-1]])
    pieces, total = [], 0
    for i in pool_order(doc_ids, seed):
        pieces.append(np.asarray(train_N[starts[i] : ends[i]]))
        total += int(ends[i] - starts[i])
        if total >= unique_tokens:
            break
    return np.concatenate(pieces)[:unique_tokens]


def pool_fingerprint(base: str, unique_tokens: int, seed: int) -> str:
    """The corpus fingerprint of a capped pool: the full corpus's, plus the pool settings."""
    settings = {"version": POOL_VERSION, "unique_tokens": unique_tokens, "seed": seed}
    return hashlib.sha256((base + json.dumps(settings, sort_keys=True)).encode()).hexdigest()
