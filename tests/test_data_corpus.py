"""Corpora: content fingerprints, the stdlib file set, disjoint fixed held-out splits, caching."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lab.data import DataConfig, DataError, load_corpus
from lab.data.sources import stdlib_files


def _write_docs(folder: Path, n: int = 12) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"doc{i:02d}.txt"
        path.write_text(f"MARK{i:02d}MARK " + "some text é " * (20 + i))
        paths.append(path)
    return paths


def _text_config(folder: Path, data_dir: Path, **kw) -> DataConfig:
    return DataConfig(
        corpus=f"text:{folder}/*.txt", data_dir=str(data_dir), eval_fraction=0.25, **kw
    )


@pytest.fixture(scope="module")
def stdlib_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stdlib-data")


def test_stdlib_corpus_excludes_tests_idle_lib2to3(stdlib_dir: Path) -> None:
    corpus = load_corpus(DataConfig(data_dir=str(stdlib_dir)))
    ids = corpus.doc_ids("train") + corpus.doc_ids("eval")
    _, files = stdlib_files()
    assert len(ids) == len(files) == corpus.num_train_docs + corpus.num_eval_docs
    assert "os.py" in ids and "json/__init__.py" in ids
    for excluded in ("test/", "idlelib/", "lib2to3/", "site-packages/"):
        assert not any(i.startswith(excluded) or f"/{excluded}" in i for i in ids), excluded
    assert corpus.num_eval_docs == round(0.02 * len(ids))
    summary = corpus.summary()
    # byte tokenizer: one token per byte plus one EOS per document
    assert summary["tokens"] == summary["bytes"] + summary["documents"]
    assert summary["bytes"] == sum(f.stat().st_size for f in files)
    assert corpus.tokenizer.vocab_size == 259 and corpus.train_N.dtype == np.uint16


def test_fingerprint_stable_across_processes(stdlib_dir: Path, tmp_path: Path) -> None:
    here = load_corpus(DataConfig(data_dir=str(stdlib_dir))).fingerprint
    code = (
        "from lab.data import DataConfig, load_corpus;"
        f"print(load_corpus(DataConfig(data_dir={str(tmp_path)!r})).fingerprint)"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert other.stdout.strip() == here  # rebuilt from scratch in another process
    assert len(here) == 64 and int(here, 16) >= 0


def test_fingerprint_follows_content_and_preprocessing(tmp_path: Path) -> None:
    folder, data_dir = tmp_path / "docs", tmp_path / "data"
    paths = _write_docs(folder)
    base = load_corpus(_text_config(folder, data_dir)).fingerprint
    assert load_corpus(_text_config(folder, data_dir)).fingerprint == base  # cached
    original = paths[3].read_text()
    paths[3].write_text(original + "one more line\n")
    edited = load_corpus(_text_config(folder, data_dir)).fingerprint
    assert edited != base
    paths[3].write_text(original)  # same content, new mtime: rebuilt, same fingerprint
    assert load_corpus(_text_config(folder, data_dir)).fingerprint == base
    assert load_corpus(_text_config(folder, data_dir, eval_seed=1)).fingerprint != base


def test_train_and_eval_never_share_a_document(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    _write_docs(folder, n=16)
    corpus = load_corpus(_text_config(folder, tmp_path / "data"))
    train_ids, eval_ids = set(corpus.doc_ids("train")), set(corpus.doc_ids("eval"))
    assert not train_ids & eval_ids and len(train_ids | eval_ids) == 16 and len(eval_ids) == 4
    train_text = corpus.tokenizer.decode(np.asarray(corpus.train_N))
    eval_text = corpus.tokenizer.decode(np.asarray(corpus.eval_N))
    for i in range(16):
        mark, name = f"MARK{i:02d}MARK", f"doc{i:02d}.txt"
        assert (mark in eval_text) == (name in eval_ids)
        assert (mark in train_text) == (name in train_ids)
    # the eval windows come from eval text only, identical on every load
    batches = corpus.eval_batches(ctx=16, batch_size=2, num_batches=3)
    again = load_corpus(_text_config(folder, tmp_path / "data")).eval_batches(
        ctx=16, batch_size=2, num_batches=3
    )
    assert np.array_equal(batches, again)
    eval_tokens = np.asarray(corpus.eval_N)
    for window in batches.reshape(-1, 17):
        starts = np.flatnonzero(eval_tokens[: len(eval_tokens) - 16] == window[0])
        assert any(np.array_equal(eval_tokens[s : s + 17], window) for s in starts)


def test_cache_is_written_once_and_reused(tmp_path: Path) -> None:
    folder, data_dir = tmp_path / "docs", tmp_path / "data"
    _write_docs(folder)
    corpus = load_corpus(_text_config(folder, data_dir))
    meta = json.loads((corpus.cache_dir / "meta.json").read_text())
    assert meta["fingerprint"] == corpus.fingerprint
    stamp = (corpus.cache_dir / "train.npy").stat().st_mtime_ns
    load_corpus(_text_config(folder, data_dir))
    assert (corpus.cache_dir / "train.npy").stat().st_mtime_ns == stamp
    assert [p.name for p in corpus.cache_dir.parent.iterdir()] == [
        corpus.cache_dir.name
    ]  # no temp dirs


def test_bad_inputs_raise_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown corpus"):
        DataConfig(corpus="wikipedia")
    with pytest.raises(DataError, match="unknown tokenizer"):
        DataConfig(tokenizer="bpe")
    with pytest.raises(DataError, match="matches no file"):
        load_corpus(DataConfig(corpus=f"text:{tmp_path}/nothing*.txt", data_dir=str(tmp_path)))
    with pytest.raises(DataError, match="unknown synthetic option"):
        DataConfig(corpus="synthetic", synthetic={"vocab": 3})
    with pytest.raises(DataError, match="unknown data config key"):
        DataConfig.from_dict({"corpus": "stdlib", "ctx": 3})
    config = DataConfig(corpus="synthetic", synthetic={"n_docs": 50}, eval_seed=4)
    assert DataConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
