"""`[data] unique_tokens`: a capped, deterministic pool of whole training documents."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lab.data import load_corpus
from lab.data.config import DataConfig
from lab.data.errors import DataError
from lab.data.pool import pool_order

SMALL = {"n_docs": 200, "states": 16, "fanout": 4, "doc_len": 40}


def _corpus(tmp_path: Path, **kw):
    return load_corpus(
        DataConfig(corpus="synthetic", synthetic=SMALL, data_dir=str(tmp_path), **kw)
    )


def test_pool_has_exactly_u_tokens_of_whole_documents_in_hash_order(tmp_path: Path) -> None:
    full = _corpus(tmp_path)
    capped = _corpus(tmp_path, unique_tokens=1000)
    assert capped.train_tokens == 1000
    assert capped.eval_tokens == full.eval_tokens
    assert np.array_equal(capped.eval_N, full.eval_N)  # held-out split untouched
    # the pool starts with the first document of the seeded order, copied whole
    tokens = np.asarray(full.train_N)
    ends = np.flatnonzero(tokens == full.tokenizer.eos_id) + 1
    starts = np.concatenate([[0], ends[:-1]])
    first = pool_order(full.doc_ids("train"), 0)[0]
    doc = tokens[starts[first] : ends[first]]
    assert np.array_equal(np.asarray(capped.train_N)[: doc.size], doc)


def test_pool_is_deterministic_and_fingerprinted(tmp_path: Path) -> None:
    a = _corpus(tmp_path, unique_tokens=1000)
    b = _corpus(tmp_path, unique_tokens=1000)
    c = _corpus(tmp_path, unique_tokens=1200)
    full = _corpus(tmp_path)
    assert np.array_equal(a.train_N, b.train_N) and a.fingerprint == b.fingerprint
    assert len({a.fingerprint, c.fingerprint, full.fingerprint}) == 3
    assert np.array_equal(np.asarray(c.train_N)[:1000], a.train_N)  # a longer pool extends it


def test_pool_bad_values(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unique_tokens"):
        DataConfig(unique_tokens=0)
    with pytest.raises(DataError, match="exceeds"):
        _corpus(tmp_path, unique_tokens=10**9)
