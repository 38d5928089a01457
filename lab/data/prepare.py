"""`data prepare`: tokenize a corpus once, offline, in parallel processes, into ArrayRecord shards.

Layout of the output directory DIR (local, or gs:// through `lab.runtime.atomic_io.as_path`):

    plan.json                         what is being prepared (source key, settings, shard ranges)
    tokenizer.model | tokenizer.json  the tokenizer's file (trained or copied), not for 'byte'
    shards/train-SSSSS-of-NNNNN.array_record, shards/eval-...   packed tokens of a document range
    shards/SSSSS.json                 a finished shard's counts and hashes (its commit marker)
    manifest.json                     written last: the corpus is ready (fingerprint, shard list)

Resumable: a shard's files are written under a temporary name, moved into place, and only
then is its marker written; a rerun skips shards with markers and redoes the rest from
scratch, so a kill at any moment leaves no shard that is read as finished but is not. The
plan is written first and a rerun with other settings or a changed source is refused.

Held-out split: document `d` is held out iff sha256(f"{eval_seed}\\0{d}") read as a fraction
of 2**64 is below `eval_fraction`: one document's side never depends on the others, so
workers decide it alone (the in-memory corpora hold out exactly round(f*n) documents instead).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np

from lab.data.config import check_tokenizer_spec, default_data_dir
from lab.data.doc_table import DocumentTable, document_table
from lab.data.errors import DataError
from lab.data.remote_dir import is_url, mirror_dataset, mirror_root
from lab.data.shards import RECORD_TOKENS, ShardWriter
from lab.data.tokenizer_files import TOKENIZER_FILES, make_tokenizer, saved_tokenizer, spec_kind
from lab.data.tokenizers import ByteTokenizer, Tokenizer, token_dtype
from lab.runtime.atomic_io import as_path, is_remote, read_json, write_json_atomic

PREPARED_FORMAT = "scaling-lab prepared tokens"
PREPARED_VERSION = 1
PACKING = "doc_tokens + [EOS], documents in corpus order, no BOS"
SPLIT_RULE = "held out iff sha256(f'{eval_seed}\\0{doc_id}')[:8] / 2**64 < eval_fraction"
ENCODE_BATCH = 64  # documents per tokenizer call


@dataclasses.dataclass(frozen=True)
class PrepareOptions:
    """What `scaling-lab data prepare` was asked for."""

    corpus: str
    out: str
    tokenizer: str = "byte"
    data_dir: str | None = None
    eval_fraction: float = 0.02
    eval_seed: int = 0
    tfds_split: str = "train"
    shards: int | None = None  # None: min(documents, max(8, documents / 50,000))
    workers: int = 1
    tokenizer_train_docs: int = 100_000  # SentencePiece:N trains on this many training documents


def held_out(doc_id: str, fraction: float, seed: int) -> bool:
    """This document's side of the split, decided from its id alone (see the module doc)."""
    digest = hashlib.sha256(f"{seed}\0{doc_id}".encode()).digest()[:8]
    return int.from_bytes(digest, "big") / 2.0**64 < fraction


def prepare(options: PrepareOptions, log: Callable[[str], None] = lambda _: None) -> dict:
    """Prepare (or finish preparing) options.out; returns the manifest."""
    check_tokenizer_spec(options.tokenizer)
    if not 0 < options.eval_fraction < 0.5:
        raise DataError(f"eval_fraction must be in (0, 0.5), got {options.eval_fraction!r}")
    if options.workers < 1 or (options.shards is not None and options.shards < 1):
        raise DataError("--workers and --shards must be >= 1")
    root = Path(options.data_dir).expanduser() if options.data_dir else default_data_dir()
    if is_url(options.data_dir):  # array_record reads local files: mirror the dataset
        root = mirror_root(options.data_dir)
        if options.corpus.startswith("tfds:"):
            mirror_dataset(options.data_dir, options.corpus[5:])
    table = document_table(options.corpus, options.tfds_split, root)
    if table.count < 2:
        raise DataError(f"{options.corpus!r} has {table.count} document(s); need at least 2")
    n_shards = options.shards or min(table.count, max(8, math.ceil(table.count / 50_000)))
    n_shards = min(n_shards, table.count)
    ranges = [
        (table.count * i // n_shards, table.count * (i + 1) // n_shards) for i in range(n_shards)
    ]
    settings = _settings(options, n_shards)
    plan = {
        "format": PREPARED_FORMAT,
        "version": PREPARED_VERSION,
        "name": options.corpus,
        "source_key": table.key,
        "settings": settings,
        "documents": table.count,
        "ranges": ranges,
    }
    out = as_path(options.out)
    _claim(out, plan)
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        log(f"{options.out} is already prepared")
        return read_json(manifest_path)

    tokenizer, tokenizer_sha = _tokenizer(out, options, table)
    dtype = np.dtype(token_dtype(tokenizer.vocab_size)).name
    (out / "shards").mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(options.out)
    pending = [i for i in range(n_shards) if not (out / "shards" / f"{i:05d}.json").exists()]
    log(f"{n_shards - len(pending)} of {n_shards} shard(s) already done; tokenizing {len(pending)}")
    jobs = [
        ShardJob(str(options.out), i, n_shards, *ranges[i], table, options.tokenizer, dtype,
                 options.eval_fraction, options.eval_seed)
        for i in pending
    ]  # fmt: skip
    for done, info in enumerate(_run(jobs, options.workers), start=1):
        log(
            f"shard {info['index']} done ({done}/{len(jobs)}): {info['train']['tokens']:,} train tokens"
        )
    manifest = _manifest(out, plan, tokenizer, tokenizer_sha, dtype)
    write_json_atomic(manifest_path, manifest)
    return manifest


def _settings(options: PrepareOptions, n_shards: int) -> dict[str, Any]:
    """Everything besides the documents that decides the tokens (enters the fingerprint)."""
    settings: dict[str, Any] = {
        "prepared_version": PREPARED_VERSION,
        "packing": PACKING,
        "split_rule": SPLIT_RULE,
        "corpus_kind": options.corpus.split(":", 1)[0],
        "tokenizer": options.tokenizer,
        "eval_fraction": float(options.eval_fraction),
        "eval_seed": int(options.eval_seed),
        "record_tokens": RECORD_TOKENS,
        "shards": n_shards,
    }
    if options.corpus.startswith("tfds:"):
        settings["tfds_split"] = options.tfds_split
    if check_tokenizer_spec(options.tokenizer) == "sentencepiece":  # trained here
        settings["tokenizer_train_docs"] = options.tokenizer_train_docs
    return settings


def _claim(out: Any, plan: dict) -> None:
    """Write the plan, or check that a started prepare in `out` was for the same plan."""
    path = out / "plan.json"
    if path.exists():
        started = read_json(path)
        if started != json.loads(json.dumps(plan)):
            changed = sorted(k for k in plan if started.get(k) != json.loads(json.dumps(plan[k])))
            raise DataError(
                f"{out} holds a prepare of other settings or of a changed source (differs in "
                f"{', '.join(changed)}); use another --out, or delete {out} to start over"
            )
        return
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out} exists and is not a prepared corpus; give an empty or new --out")
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, plan)


def _tokenizer(
    out: Any, options: PrepareOptions, table: DocumentTable
) -> tuple[Tokenizer, str | None]:
    """The tokenizer, saved in `out` once (a resumed prepare reuses the saved copy); its sha256."""
    if options.tokenizer == "byte":
        return ByteTokenizer(), None
    path = out / TOKENIZER_FILES[spec_kind(options.tokenizer)]
    if not path.exists():

        def train_texts() -> Iterator[str]:
            taken = 0
            for doc_id, text in table.read(0, table.count):
                if taken >= options.tokenizer_train_docs:
                    return
                if not held_out(doc_id, options.eval_fraction, options.eval_seed):
                    taken += 1
                    yield text

        _, data = make_tokenizer(options.tokenizer, train_texts)
        assert data is not None  # every non-byte tokenizer has a file
        _write_bytes_atomic(path, data)
    data = path.read_bytes()
    return saved_tokenizer(options.tokenizer, out), hashlib.sha256(data).hexdigest()


def _write_bytes_atomic(path: Any, data: bytes) -> None:
    if is_remote(path):
        path.write_bytes(data)  # one object upload is atomic
        return
    tmp = Path(f"{path}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclasses.dataclass(frozen=True)
class ShardJob:
    """One shard: documents [start, stop) of the table, tokenized by one worker process."""

    out: str
    index: int
    count: int
    start: int
    stop: int
    table: DocumentTable
    tokenizer: str
    dtype: str
    eval_fraction: float
    eval_seed: int

    def file(self, split: str) -> str:
        return f"{split}-{self.index:05d}-of-{self.count:05d}.array_record"


def _run(jobs: list[ShardJob], workers: int) -> Iterator[dict]:
    """Shard infos as they finish: inline for one worker, else in spawned processes."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(prepare_shard, jobs)
        return
    context = multiprocessing.get_context("spawn")  # no forked tokenizer/absl threads
    try:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
            yield from pool.map(prepare_shard, jobs)
    except BrokenProcessPool as error:
        raise DataError(
            "a prepare worker process died (killed, or out of memory); finished shards are "
            "kept: rerun the same command to resume, with fewer --workers if memory ran out"
        ) from error


def prepare_shard(job: ShardJob) -> dict[str, Any]:
    """Tokenize and pack one shard's documents, move its files into place, then write its marker."""
    out = as_path(job.out)
    tokenizer = saved_tokenizer(job.tokenizer, out)
    dtype = np.dtype(job.dtype)
    local_parent = None if is_remote(job.out) else Path(job.out) / "shards"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{job.index:05d}-", dir=local_parent))
    try:
        writers = {s: ShardWriter(str(tmp / job.file(s)), dtype.type) for s in ("train", "eval")}
        docs = {"train": 0, "eval": 0}
        text_bytes = {"train": 0, "eval": 0}
        eos = np.asarray([tokenizer.eos_id], dtype=dtype)
        batch: list[tuple[str, str]] = []
        for doc in job.table.read(job.start, job.stop):
            batch.append(doc)
            if len(batch) == ENCODE_BATCH:
                _encode_batch(batch, tokenizer, writers, docs, text_bytes, eos, job)
                batch = []
        _encode_batch(batch, tokenizer, writers, docs, text_bytes, eos, job)
        info: dict[str, Any] = {"index": job.index, "start": job.start, "stop": job.stop}
        for split, writer in writers.items():
            info[split] = {
                "file": job.file(split),
                **writer.close(),
                "documents": docs[split],
                "bytes": text_bytes[split],
            }
        for split in writers:
            _move(tmp / job.file(split), out / "shards" / job.file(split))
        write_json_atomic(out / "shards" / f"{job.index:05d}.json", info)
        return info
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _encode_batch(
    batch: list[tuple[str, str]],
    tokenizer: Tokenizer,
    writers: dict[str, ShardWriter],
    docs: dict[str, int],
    text_bytes: dict[str, int],
    eos: np.ndarray,
    job: ShardJob,
) -> None:
    """Tokenize a batch of documents and append each, + EOS, to its split's shard."""
    if not batch:
        return
    if isinstance(tokenizer, ByteTokenizer):
        encoded = [tokenizer.encode_bytes(text) for _, text in batch]
    else:
        encoded = tokenizer.encode_many([text for _, text in batch], num_threads=1)  # type: ignore[attr-defined]
    for (doc_id, text), ids in zip(batch, encoded, strict=True):
        split = "eval" if held_out(doc_id, job.eval_fraction, job.eval_seed) else "train"
        writers[split].add(np.concatenate([np.asarray(ids, dtype=eos.dtype), eos]))
        docs[split] += 1
        text_bytes[split] += len(text.encode("utf-8"))


def _remove_stale_temporaries(out: str) -> None:
    """Temporary shard directories a killed prepare left behind (one prepare per DIR at a time)."""
    if not is_remote(out):
        for stale in (Path(out) / "shards").glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)


def _move(local: Path, dest: Any) -> None:
    if is_remote(dest):
        from etils import epath

        epath.Path(local).copy(dest, overwrite=True)
    else:
        os.replace(local, dest)


def _manifest(
    out: Any, plan: dict, tokenizer: Tokenizer, tokenizer_sha: str | None, dtype: str
) -> dict:
    """The finished corpus: totals, shard list and the content fingerprint."""
    shards = [read_json(out / "shards" / f"{i:05d}.json") for i in range(len(plan["ranges"]))]
    totals = {
        s: {k: sum(x[s][k] for x in shards) for k in ("tokens", "documents", "bytes")}
        for s in ("train", "eval")
    }
    if totals["eval"]["documents"] == 0 or totals["train"]["documents"] == 0:
        raise DataError(
            f"{plan['name']!r}: {totals['train']['documents']} training and "
            f"{totals['eval']['documents']} held-out document(s) with eval_fraction="
            f"{plan['settings']['eval_fraction']}; both sides need documents (raise "
            "--eval-fraction or use a bigger corpus)"
        )
    h = hashlib.sha256(json.dumps(plan["settings"], sort_keys=True).encode())
    h.update((tokenizer_sha or "byte").encode())
    for shard in shards:
        for split in ("train", "eval"):
            h.update(f"{split}\0{shard[split]['tokens']}\0{shard[split]['sha256']}\n".encode())
    return {
        "format": PREPARED_FORMAT,
        "version": PREPARED_VERSION,
        "name": plan["name"],
        "fingerprint": h.hexdigest(),
        "source_key": plan["source_key"],
        "settings": plan["settings"],
        "tokenizer": {
            "spec": tokenizer.spec,
            "vocab_size": tokenizer.vocab_size,
            "file": TOKENIZER_FILES.get(spec_kind(tokenizer.spec)),
            "sha256": tokenizer_sha,
        },
        "dtype": dtype,
        "record_tokens": RECORD_TOKENS,
        "totals": totals,
        "shards": shards,
    }
