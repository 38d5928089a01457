"""`load_corpus`: documents -> held-out split -> tokens -> packed uint16/uint32 arrays, cached on disk.

The first load of a corpus reads and tokenizes it and writes `train.npy`, `eval.npy`,
`meta.json` (and `tokenizer.model` for SentencePiece) into DATA_DIR/cache/NAME-KEY/, where KEY
hashes the cheap source key (file names, sizes, mtimes / dataset metadata / synthetic
options) with the tokenizer and split settings. Later loads only stat the files and memory-map
the arrays (milliseconds). `prepared:DIR` corpora are opened from their shards instead
(`lab.data.prepared`). The directory is built under a temporary name and renamed into
place, so concurrent sweep workers never see a half-written cache.

The recorded `fingerprint` is the sha256 of the preprocessing settings and of the packed
token arrays themselves (plus the SentencePiece model): it depends on content, preprocessing,
tokenizer and split, never on paths or mtimes, so it is stable across processes and machines
with the same text, and any edit that changes what a model sees changes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from lab.data.config import DataConfig, check_tokenizer_spec
from lab.data.errors import DataError
from lab.data.pool import pool_fingerprint, unique_pool
from lab.data.stream import TokenStream, eval_windows
from lab.data.tokenizer_files import (
    TOKENIZER_FILES,
    make_tokenizer,
    saved_tokenizer,
    spec_kind,
    tokenizer_path,
)
from lab.data.tokenizers import ByteTokenizer, SymbolTokenizer, Tokenizer, token_dtype

PREPROCESS_VERSION = 1  # bump when documents, splitting or packing change meaning
PACKING = "doc_tokens + [EOS], documents in corpus order, no BOS"


class Corpus:
    """A tokenized corpus split into train and held-out documents, backed by memory-mapped arrays."""

    def __init__(self, cache_dir: Path, config: DataConfig) -> None:
        meta = json.loads((cache_dir / "meta.json").read_text())
        self.config = config
        self.cache_dir = cache_dir
        self.meta: dict[str, Any] = meta
        self.name: str = meta["name"]
        self.fingerprint: str = meta["fingerprint"]
        self.tokenizer: Tokenizer = _make_tokenizer(meta, cache_dir)
        self.train_N: np.ndarray = np.load(cache_dir / "train.npy", mmap_mode="r")
        if config.unique_tokens is not None:
            self.train_N = unique_pool(
                self.train_N,
                self.doc_ids("train"),
                self.tokenizer.eos_id,
                config.unique_tokens,
                config.eval_seed,
            )
            self.fingerprint = pool_fingerprint(
                self.fingerprint, config.unique_tokens, config.eval_seed
            )
        self.eval_N: np.ndarray = np.load(cache_dir / "eval.npy", mmap_mode="r")
        self.train_tokens: int = int(self.train_N.shape[0])
        self.eval_tokens: int = int(self.eval_N.shape[0])
        self.num_train_docs: int = meta["num_train_docs"]
        self.num_eval_docs: int = meta["num_eval_docs"]
        self.true_entropy: float | None = meta["true_entropy"]

    def __repr__(self) -> str:
        return f"Corpus({self.name!r}, train_tokens={self.train_tokens}, fingerprint={self.fingerprint[:12]})"

    def doc_ids(self, split: str) -> list[str]:
        """Document ids of 'train' or 'eval', in packing order (for audits and tests)."""
        ids = json.loads((self.cache_dir / "doc_ids.json").read_text())
        return ids[split]

    def summary(self) -> dict[str, Any]:
        """What `scaling-lab data` prints and what a run records about its data."""
        m = self.meta
        return {
            "corpus": self.name,
            "fingerprint": self.fingerprint,
            "tokenizer": self.tokenizer.spec,
            "vocab_size": self.tokenizer.vocab_size,
            "documents": self.num_train_docs + self.num_eval_docs,
            "bytes": m["train_bytes"] + m["eval_bytes"] if m["train_bytes"] is not None else None,
            "tokens": self.train_tokens + self.eval_tokens,
            "train_documents": self.num_train_docs,
            "eval_documents": self.num_eval_docs,
            "train_tokens": self.train_tokens,
            "eval_tokens": self.eval_tokens,
            "eval_fraction": self.config.eval_fraction,
            "eval_seed": self.config.eval_seed,
            "unique_tokens": self.config.unique_tokens,
            "packing": PACKING,
            "true_entropy_nats_per_token": self.true_entropy,
            "cache_dir": str(self.cache_dir),
        }

    def train_stream(
        self,
        *,
        ctx: int,
        batch_size: int,
        num_tokens: int,
        seed: int,
        process_index: int = 0,
        process_count: int = 1,
    ) -> TokenStream:
        """Exactly num_tokens training tokens as shuffled ctx+1 windows (see `TokenStream`)."""
        return TokenStream(
            self.train_N,
            ctx=ctx,
            batch_size=batch_size,
            num_tokens=num_tokens,
            seed=seed,
            process_index=process_index,
            process_count=process_count,
            max_epochs=self.config.max_epochs,
            fingerprint=self.fingerprint,
        )

    def eval_batches(self, *, ctx: int, batch_size: int, num_batches: int) -> np.ndarray:
        """int32 [num_batches, batch_size, ctx+1] held-out windows; the same for every run of a sweep."""
        return eval_windows(
            self.eval_N,
            ctx=ctx,
            batch_size=batch_size,
            num_batches=num_batches,
            seed=self.config.eval_seed,
        )


def load_corpus(config: DataConfig) -> Any:
    """Open the cached corpus of `config` (a `Corpus`, or a `PreparedCorpus` for 'prepared:DIR'),
    building the cache first if needed."""
    from lab.data import sources
    from lab.data.remote_dir import is_url, mirror_dataset

    if config.corpus.startswith("prepared:"):
        from lab.data.prepared import open_prepared

        return open_prepared(config)
    root = config.root
    if config.corpus == "synthetic":
        if config.tokenizer != "byte":
            raise DataError(
                "the synthetic corpus has its own symbol tokenizer; leave tokenizer='byte'"
            )
        source_key: dict[str, Any] = {"synthetic": config.synthetic_options()}
        source = None
    elif config.corpus == "stdlib":
        source = sources.stdlib_source()
        source_key = source.key
    elif config.corpus.startswith("text:"):
        source = sources.text_source(config.corpus[5:], root)
        source_key = source.key
    else:
        if is_url(config.data_dir):  # array_record reads local files: mirror the dataset
            mirror_dataset(config.data_dir, config.corpus[5:])
        source = sources.tfds_source(config.corpus[5:], config.tfds_split, root)
        source_key = source.key
    settings = _settings(config)
    key = _sha({"source": source_key, **settings})
    slug = "".join(c if c.isalnum() else "_" for c in config.corpus)[:40]
    cache_dir = root / "cache" / f"{slug}-{key[:20]}"
    if not (cache_dir / "meta.json").exists():
        if source is None:
            docs, tokenizer, entropy = _synthetic_documents(config)
        else:
            docs, tokenizer, entropy = list(source.documents()), None, None
        _build(cache_dir, config, settings, docs, tokenizer, entropy)
    return Corpus(cache_dir, config)


def _settings(config: DataConfig) -> dict[str, Any]:
    """Everything besides the documents that decides the tokens a model sees."""
    settings: dict[str, Any] = {
        "preprocess_version": PREPROCESS_VERSION,
        "packing": PACKING,
        "corpus_kind": config.corpus.split(":", 1)[0],
        "tokenizer": config.tokenizer,
        "eval_fraction": float(config.eval_fraction),
        "eval_seed": int(config.eval_seed),
    }
    if config.corpus == "synthetic":
        settings["synthetic"] = config.synthetic_options()
    if config.corpus.startswith("tfds:"):
        settings["tfds_split"] = config.tfds_split
    if check_tokenizer_spec(config.tokenizer) in ("sentencepiece-file", "hf"):
        settings["tokenizer_sha256"] = tokenizer_file_sha256(config.tokenizer)
    return settings


def tokenizer_file_sha256(spec: str) -> str:
    """Content hash of a tokenizer file: an edited model at the same path is a new cache."""
    path = tokenizer_path(spec)
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise DataError(
            f"cannot read the tokenizer file of {spec!r} ({error.strerror}: {path}); check the path"
        ) from error


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _synthetic_documents(config: DataConfig) -> tuple[list, SymbolTokenizer, float]:
    from lab.data.synthetic import build_language

    options = config.synthetic_options()
    language = build_language(options)
    ids = language.sample_documents(int(options["n_docs"]), int(options["seed"]))
    docs = [(f"synthetic/{i}", doc) for i, doc in enumerate(ids)]
    return docs, SymbolTokenizer(language.states), language.entropy_rate()


def eval_indices(doc_ids: list[str], fraction: float, seed: int) -> np.ndarray:
    """Indices of the held-out documents: the round(fraction*n) ids with the smallest seeded hash.

    Per-document hashing keeps a document's side of the split independent of which other
    documents exist, so adding a file to a corpus does not reshuffle the split.
    """
    n = len(doc_ids)
    k = max(1, round(fraction * n))
    if n < 2 or k >= n:
        raise DataError(
            f"cannot hold out {fraction:.3g} of {n} document(s): need at least one on each side"
        )
    keys = [hashlib.sha256(f"{seed}\0{d}".encode()).digest()[:8] for d in doc_ids]
    order = sorted(range(n), key=lambda i: (keys[i], i))
    return np.sort(np.asarray(order[:k], dtype=np.int64))


def _build(
    cache_dir: Path,
    config: DataConfig,
    settings: dict[str, Any],
    docs: list[tuple[str, Any]],
    tokenizer: Tokenizer | None,
    entropy: float | None,
) -> None:
    """Split, tokenize, pack, fingerprint and write one cache directory atomically."""
    ids = [doc_id for doc_id, _ in docs]
    if len(set(ids)) != len(ids):
        raise DataError("corpus has duplicate document ids; each document must be named once")
    is_eval = np.zeros(len(docs), dtype=bool)
    is_eval[eval_indices(ids, config.eval_fraction, config.eval_seed)] = True
    train_docs = [d for d, e in zip(docs, is_eval, strict=True) if not e]
    eval_docs = [d for d, e in zip(docs, is_eval, strict=True) if e]
    sp_model = None  # the tokenizer file's bytes (trained or loaded), saved with the tokens
    if tokenizer is None:  # text corpora
        tokenizer, sp_model = make_tokenizer(config.tokenizer, lambda: (t for _, t in train_docs))
    train_N, train_bytes = _pack(train_docs, tokenizer)
    eval_N, eval_bytes = _pack(eval_docs, tokenizer)
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for arr in (train_N, eval_N):
        h.update(np.int64(arr.shape[0]).tobytes())
        h.update(np.ascontiguousarray(arr).tobytes())
    if sp_model is not None:
        h.update(sp_model)
    meta = {
        "name": config.corpus,
        "fingerprint": h.hexdigest(),
        "settings": settings,
        "tokenizer": tokenizer.spec,
        "vocab_size": tokenizer.vocab_size,
        "num_train_docs": len(train_docs),
        "num_eval_docs": len(eval_docs),
        "train_bytes": train_bytes,
        "eval_bytes": eval_bytes,
        "true_entropy": entropy,
    }
    cache_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=cache_dir.name + ".tmp-", dir=cache_dir.parent))
    try:
        np.save(tmp / "train.npy", train_N)
        np.save(tmp / "eval.npy", eval_N)
        if sp_model is not None:
            (tmp / TOKENIZER_FILES[spec_kind(tokenizer.spec)]).write_bytes(sp_model)
        (tmp / "doc_ids.json").write_text(
            json.dumps({"train": [d for d, _ in train_docs], "eval": [d for d, _ in eval_docs]})
        )
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        os.replace(tmp, cache_dir)
    except OSError:
        if not (cache_dir / "meta.json").exists():  # not a lost race with another worker
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pack(docs: list[tuple[str, Any]], tokenizer: Tokenizer) -> tuple[np.ndarray, int | None]:
    """Concatenate doc tokens + [EOS] into one uint16 (uint32 for vocab > 65,536) array; also
    return the text bytes (if text)."""
    dtype = token_dtype(tokenizer.vocab_size)
    if not docs:
        return np.zeros(0, dtype=dtype), 0
    if isinstance(docs[0][1], np.ndarray):  # pre-tokenized (synthetic)
        pieces = [np.asarray(d, dtype=np.uint16) for _, d in docs]
        n_bytes = None
    elif isinstance(tokenizer, ByteTokenizer):
        raw = [t.encode("utf-8") for _, t in docs]
        pieces = [np.frombuffer(r, dtype=np.uint8) for r in raw]
        n_bytes = sum(len(r) for r in raw)
    else:
        texts = [t for _, t in docs]
        pieces = [np.asarray(ids, dtype=dtype) for ids in tokenizer.encode_many(texts)]  # type: ignore[attr-defined]
        n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    lengths = np.asarray([len(p) + 1 for p in pieces], dtype=np.int64)
    out_N = np.full(int(lengths.sum()), tokenizer.eos_id, dtype=dtype)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for start, piece in zip(starts, pieces, strict=True):
        out_N[start : start + len(piece)] = piece
    return out_N, n_bytes


def _make_tokenizer(meta: dict[str, Any], cache_dir: Path) -> Tokenizer:
    spec = meta["tokenizer"]
    if spec.startswith("symbols:"):
        return SymbolTokenizer(int(spec.split(":")[1]))
    return saved_tokenizer(spec, cache_dir)
