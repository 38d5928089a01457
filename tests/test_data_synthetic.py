"""The synthetic language: closed-form entropy rate against a hand formula and a long sample."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lab.data import DataConfig, DataError, load_corpus
from lab.data.config import SYNTHETIC_DEFAULTS
from lab.data.synthetic import build_language, plugin_entropy


def test_entropy_rate_matches_hand_formula_for_a_deterministic_chain() -> None:
    # fanout 1: every symbol has one successor (prob 1-q) or ends the document (prob q); the
    # EOS row is deterministic. Cycles average doc_len tokens, so pi(EOS) = 1/doc_len and
    # H = (1 - 1/doc_len) * h(q) with h the binary entropy.
    doc_len = 11.0
    language = build_language({**SYNTHETIC_DEFAULTS, "states": 5, "fanout": 1, "doc_len": doc_len})
    q = 1 / (doc_len - 1)
    binary = -q * math.log(q) - (1 - q) * math.log(1 - q)
    assert language.entropy_rate() == pytest.approx((1 - 1 / doc_len) * binary, rel=1e-12)
    pi = language.stationary()
    assert pi[language.eos] == pytest.approx(1 / doc_len, rel=1e-12)
    assert np.allclose(pi @ language.dense(), pi)


def test_default_language_is_learnable_size() -> None:
    language = build_language(SYNTHETIC_DEFAULTS)
    assert 1.5 < language.entropy_rate() < 3.0
    assert np.allclose(language.dense().sum(axis=1), 1.0)


def test_empirical_entropy_of_corpus_within_one_percent(tmp_path: Path) -> None:
    config = DataConfig(corpus="synthetic", synthetic={"n_docs": 6000}, data_dir=str(tmp_path))
    corpus = load_corpus(config)
    assert corpus.tokenizer.vocab_size == SYNTHETIC_DEFAULTS["states"] + 3
    tokens = np.asarray(corpus.train_N)
    assert tokens.size > 1_000_000
    empirical = plugin_entropy(tokens, corpus.tokenizer.vocab_size)
    assert corpus.true_entropy == pytest.approx(
        build_language(config.synthetic_options()).entropy_rate()
    )
    assert empirical == pytest.approx(corpus.true_entropy, rel=0.01)
    # documents average doc_len tokens, EOS included
    n_docs = int((tokens == corpus.tokenizer.eos_id).sum())
    assert n_docs == corpus.num_train_docs
    assert tokens.size / n_docs == pytest.approx(SYNTHETIC_DEFAULTS["doc_len"], rel=0.03)


def test_synthetic_corpus_is_seeded(tmp_path: Path) -> None:
    small = {"n_docs": 40, "states": 16, "fanout": 4, "doc_len": 20}
    a = load_corpus(DataConfig(corpus="synthetic", synthetic=small, data_dir=str(tmp_path / "a")))
    b = load_corpus(DataConfig(corpus="synthetic", synthetic=small, data_dir=str(tmp_path / "b")))
    c = load_corpus(
        DataConfig(corpus="synthetic", synthetic={**small, "seed": 1}, data_dir=str(tmp_path))
    )
    assert a.fingerprint == b.fingerprint and np.array_equal(a.train_N, b.train_N)
    assert c.fingerprint != a.fingerprint
    assert not set(a.doc_ids("train")) & set(a.doc_ids("eval"))
    with pytest.raises(DataError, match="fanout"):
        build_language({**SYNTHETIC_DEFAULTS, "states": 4, "fanout": 8})
