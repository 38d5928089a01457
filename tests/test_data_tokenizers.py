"""Tokenizers: lossless byte level, synthetic symbols, and SentencePiece trained on the train split."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import numpy as np
import pytest

from lab.data import ByteTokenizer, DataConfig, DataError, SymbolTokenizer, load_corpus


def test_byte_tokenizer_round_trip_and_specials() -> None:
    tok = ByteTokenizer()
    text = "déjà vu ☃\n\tend"
    ids = tok.encode(text)
    assert ids.dtype == np.int32 and ids.tolist() == list(text.encode("utf-8"))
    assert tok.decode(ids) == text
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.vocab_size) == (256, 257, 258, 259)
    assert tok.decode([104, 105, tok.pad_id, tok.eos_id, 33]) == "hi\n!"


def test_symbol_tokenizer_round_trip() -> None:
    tok = SymbolTokenizer(10)
    ids = np.array([0, 9, 3, tok.eos_id, 5])
    assert tok.decode(ids) == "t0 t9 t3 <eos> t5"
    assert tok.encode(tok.decode(ids)).tolist() == ids.tolist()
    with pytest.raises(DataError, match="t10"):
        tok.encode("t10")


def test_sentencepiece_trained_offline_on_train_split(tmp_path: Path) -> None:
    pytest.importorskip("sentencepiece")
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    spec = f"text:{stdlib}/json/*.py,{stdlib}/email/_*.py"
    config = {"corpus": spec, "tokenizer": "sentencepiece:400", "eval_fraction": 0.2}
    sp = load_corpus(DataConfig(**config, data_dir=str(tmp_path)))
    byte = load_corpus(DataConfig(corpus=spec, data_dir=str(tmp_path), eval_fraction=0.2))
    assert sp.tokenizer.vocab_size == 400
    assert (sp.cache_dir / "tokenizer.model").exists()
    assert sp.fingerprint != byte.fingerprint
    assert sp.doc_ids("eval") == byte.doc_ids("eval")  # the split does not depend on the tokenizer
    assert sp.train_tokens < 0.8 * byte.train_tokens  # merges: fewer tokens than bytes
    assert int(np.asarray(sp.train_N).max()) < 400
    # lossless on held-out text it was not trained on
    eval_name = sp.doc_ids("eval")[0]
    text = (stdlib / eval_name).read_text(encoding="utf-8")  # ids are relative to the common dir
    ids = sp.tokenizer.encode(text)
    assert sp.tokenizer.decode(ids) == text
    # reloading reads the saved model: same ids; training again elsewhere is deterministic
    again = load_corpus(DataConfig(**{**config, "data_dir": str(tmp_path)}))
    assert again.fingerprint == sp.fingerprint
    assert np.array_equal(again.tokenizer.encode(text), ids)
    fresh = load_corpus(DataConfig(**{**config, "data_dir": str(tmp_path / "fresh")}))
    assert fresh.fingerprint == sp.fingerprint
