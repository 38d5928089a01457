"""`data prepare`: shards equal a naive packing, parallel = serial, a killed prepare resumes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lab.data import DataConfig, DataError, load_corpus
from lab.data.prepare import PrepareOptions, prepare
from lab.data.shards import RECORD_TOKENS

REPO = Path(__file__).resolve().parent.parent


def write_docs(directory: Path, n: int = 40, seed: int = 0) -> list[Path]:
    """n small text files of varied length (one file = one document)."""
    rng = np.random.default_rng(seed)
    words = ["alpha", "beta", "gamma", "delta", "héllo", "wörld", "x", "yy", "\n", "☃"]
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        text = " ".join(rng.choice(words, size=int(rng.integers(50, 600))))
        path = directory / f"doc{i:03d}.txt"
        path.write_text(f"document {i}: {text}", encoding="utf-8")
        paths.append(path)
    return paths


def is_held_out(doc_id: str, fraction: float, seed: int) -> bool:
    """The documented split rule, computed here: the seeded hash as a fraction of 2**64."""
    digest = hashlib.sha256(f"{seed}\0{doc_id}".encode()).digest()[:8]
    return int.from_bytes(digest, "big") < fraction * 2**64


def reference(paths: list[Path], fraction: float, seed: int) -> dict[str, np.ndarray]:
    """The packed byte tokens of each split, computed here from the files and the split rule."""
    packed: dict[str, list[int]] = {"train": [], "eval": []}
    for path in paths:
        split = "eval" if is_held_out(path.name, fraction, seed) else "train"
        packed[split] += [*path.read_bytes(), 257]  # bytes + EOS
    return {k: np.asarray(v, dtype=np.int64) for k, v in packed.items()}


def _options(docs: Path, out: Path, **kw) -> PrepareOptions:
    args = {"corpus": f"text:{docs}", "out": str(out), "eval_fraction": 0.2, "shards": 6}
    return PrepareOptions(**{**args, **kw})


def _shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "shards").glob("*.array_record"))}


def test_prepared_tokens_equal_a_naive_reference(tmp_path: Path) -> None:
    paths = write_docs(tmp_path / "docs")
    manifest = prepare(_options(tmp_path / "docs", tmp_path / "p"))
    expected = reference(paths, 0.2, 0)
    corpus = load_corpus(DataConfig(corpus=f"prepared:{tmp_path / 'p'}", eval_fraction=0.2))
    assert manifest["dtype"] == "uint16" and len(manifest["shards"]) == 6
    assert manifest["shards"][0]["train"]["tokens"] > RECORD_TOKENS + 350  # a record boundary
    for split, tokens in (("train", corpus.train_N), ("eval", corpus.eval_N)):
        assert tokens.shape[0] == expected[split].size
        assert np.array_equal(tokens.read(0, tokens.shape[0]), expected[split])
        # random windows, across record and shard boundaries
        starts = np.random.default_rng(1).integers(0, tokens.shape[0] - 700, size=50)
        first_shard = manifest["shards"][0][split]["tokens"]
        edges = [RECORD_TOKENS - 350, first_shard - 350]  # across a record, across a shard
        edges = [e for e in edges if 0 <= e < tokens.shape[0] - 700]
        starts = np.concatenate([starts, np.asarray(edges, dtype=np.int64)])
        got = tokens.windows(starts, 700)
        assert np.array_equal(got, expected[split][starts[:, None] + np.arange(700)])
    summary = corpus.summary()
    assert summary["documents"] == 40 and 0 < summary["eval_documents"] < 20
    assert summary["bytes"] == sum(p.stat().st_size for p in paths)


def test_parallel_prepare_equals_serial_and_rerun_is_a_no_op(tmp_path: Path) -> None:
    write_docs(tmp_path / "docs")
    serial = prepare(_options(tmp_path / "docs", tmp_path / "serial"))
    parallel = prepare(_options(tmp_path / "docs", tmp_path / "parallel", workers=2))
    assert parallel["fingerprint"] == serial["fingerprint"]
    assert _shard_bytes(tmp_path / "parallel") == _shard_bytes(tmp_path / "serial")
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "serial").rglob("*")}
    assert prepare(_options(tmp_path / "docs", tmp_path / "serial")) == serial
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "serial").rglob("*")} == before
    # a different split is a different corpus
    other = prepare(_options(tmp_path / "docs", tmp_path / "other", eval_seed=1))
    assert other["fingerprint"] != serial["fingerprint"]


KILLER = """
import os, signal, sys
from lab.data import shards
from lab.data.prepare import PrepareOptions, prepare

original = shards.ShardWriter.add
def add(self, ids):
    original(self, ids)
    if "00002-of" in self.path and self.tokens > 3000:  # halfway through the third shard
        os.kill(os.getpid(), signal.SIGKILL)
shards.ShardWriter.add = add
prepare(PrepareOptions(corpus="text:" + sys.argv[1], out=sys.argv[2], eval_fraction=0.2, shards=6))
"""


def test_killed_prepare_resumes_without_redoing_finished_shards(tmp_path: Path) -> None:
    write_docs(tmp_path / "docs")
    out = tmp_path / "p"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-c", KILLER, str(tmp_path / "docs"), str(out)]
    killed = subprocess.run(args, env=env, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    markers = sorted(p.name for p in (out / "shards").glob("*.json"))
    assert markers == ["00000.json", "00001.json"] and not (out / "manifest.json").exists()
    assert list((out / "shards").glob(".tmp-00002-*"))  # the half-written shard, not in place
    assert not list((out / "shards").glob("train-00002-*"))
    with pytest.raises(DataError, match="has not finished; rerun the same"):
        load_corpus(DataConfig(corpus=f"prepared:{out}", eval_fraction=0.2))
    finished = {
        p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "shards").glob("*0000[01]*")
    }
    assert len(finished) == 6  # train, eval and marker of shards 0 and 1

    resumed = prepare(_options(tmp_path / "docs", out))
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in finished} == finished
    assert not list((out / "shards").glob(".tmp-*"))
    clean = prepare(_options(tmp_path / "docs", tmp_path / "clean"))
    assert resumed["fingerprint"] == clean["fingerprint"]
    assert _shard_bytes(out) == _shard_bytes(tmp_path / "clean")


def test_bad_requests_are_clear_errors_and_lose_nothing(tmp_path: Path) -> None:
    write_docs(tmp_path / "docs", n=12)
    out = tmp_path / "p"
    manifest = prepare(_options(tmp_path / "docs", out, shards=3))
    with pytest.raises(
        DataError, match=r"other settings or of a changed source \(differs in settings\)"
    ):
        prepare(_options(tmp_path / "docs", out, shards=3, tokenizer="sentencepiece:300"))
    (tmp_path / "docs" / "doc000.txt").write_text("edited")
    with pytest.raises(DataError, match=r"differs in source_key"):
        prepare(_options(tmp_path / "docs", out, shards=3))
    assert json.loads((out / "manifest.json").read_text()) == manifest  # untouched
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not a prepared corpus"):
        prepare(_options(tmp_path / "docs", tmp_path / "busy"))
    with pytest.raises(DataError, match=r"no prepared corpus at .*data prepare SOURCE"):
        load_corpus(DataConfig(corpus=f"prepared:{tmp_path / 'nothing'}"))
    with pytest.raises(DataError, match=r"prepared with eval_fraction = 0\.2"):
        load_corpus(DataConfig(corpus=f"prepared:{out}"))
    with pytest.raises(DataError, match="set \\[data\\] tokenizer = 'byte'"):
        load_corpus(
            DataConfig(corpus=f"prepared:{out}", eval_fraction=0.2, tokenizer="sentencepiece:300")
        )
    with pytest.raises(DataError, match="unique_tokens is not supported"):
        load_corpus(DataConfig(corpus=f"prepared:{out}", eval_fraction=0.2, unique_tokens=100))
    with pytest.raises(DataError, match="synthetic corpus is generated in memory"):
        prepare(PrepareOptions(corpus="synthetic", out=str(tmp_path / "s")))


def test_cli_prepare_then_describe(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The README's commands: prepare with a trained SentencePiece in 2 processes, then describe."""
    from experiments.main import main

    write_docs(tmp_path / "docs", n=10)
    out = tmp_path / "p"
    argv = ["data", "prepare", f"text:{tmp_path / 'docs'}", "--out", str(out)]
    argv += ["--tokenizer", "sentencepiece:300", "--workers", "2", "--shards", "2"]
    assert main([*argv, "--eval-fraction", "0.3", "--json"]) == 0
    prepared = json.loads(capsys.readouterr().out)
    assert prepared["corpus"] == f"prepared:{out}" and prepared["shards"] == 2
    assert prepared["vocab_size"] == 300 and (out / "tokenizer.model").exists()
    # describing it takes its tokenizer and split from the manifest; a mismatch is refused
    assert main(["data", f"prepared:{out}", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["fingerprint"] == prepared["fingerprint"]
    assert summary["train_tokens"] == prepared["train_tokens"]
    assert summary["train_tokens"] < 0.8 * summary["bytes"]  # merges: fewer tokens than bytes
    assert main(["data", f"prepared:{out}", "--eval-seed", "1"]) == 2
    assert "prepared with eval_seed = 0, not 1" in capsys.readouterr().err
    assert main(["data", "prepare", "stdlib"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scaling-lab data: error: usage: scaling-lab data prepare")


def test_prepare_a_tfds_dataset(tmp_path: Path) -> None:
    """`tfds:NAME` (the path C4 takes): documents are the split's examples, ids 'train/INDEX'."""
    tfds = pytest.importorskip("tensorflow_datasets")
    from lab.data.textds import BUILDER_NAME, build_text_dataset

    paths = write_docs(tmp_path / "docs", n=16)
    build_text_dataset(paths, [p.name for p in paths], tmp_path / "tfds")
    options = PrepareOptions(
        corpus=f"tfds:{BUILDER_NAME}",
        out=str(tmp_path / "p"),
        data_dir=str(tmp_path / "tfds"),
        eval_fraction=0.25,
        shards=4,
    )
    manifest = prepare(options)
    assert manifest["settings"]["tfds_split"] == "train"
    source = tfds.data_source(BUILDER_NAME, split="train", data_dir=str(tmp_path / "tfds"))
    expected: dict[str, list[int]] = {"train": [], "eval": []}
    for i in range(len(source)):
        split = "eval" if is_held_out(f"train/{i}", 0.25, 0) else "train"
        expected[split] += [*source[i]["text"], 257]
    corpus = load_corpus(DataConfig(corpus=f"prepared:{options.out}", eval_fraction=0.25))
    for split, tokens in (("train", corpus.train_N), ("eval", corpus.eval_N)):
        assert tokens.read(0, tokens.shape[0]).tolist() == expected[split]


def test_a_prepared_corpus_in_a_bucket_is_mirrored_to_this_host_and_reads_the_same(
    tmp_path: Path, gcs_bucket, monkeypatch
) -> None:
    """`prepared:gs://...`: array_record opens local files only, so each host mirrors the
    shards to its own disk on first use (lab.data.remote_dir); the windows are the local ones.
    An unfinished upload (no manifest.json) is refused in one line."""
    import fsspec

    monkeypatch.setenv("SCALING_LAB_DATA", str(tmp_path / "data"))
    write_docs(tmp_path / "docs")
    out = tmp_path / "p"
    prepare(_options(tmp_path / "docs", out))
    url = gcs_bucket.url("prepared")
    fs = fsspec.filesystem("gs")
    with pytest.raises(DataError, match=r"no finished prepared corpus at gs://.*data prepare"):
        load_corpus(DataConfig(corpus=f"prepared:{url}", eval_fraction=0.2))
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        fs.pipe_file(f"{url}/{path.relative_to(out).as_posix()}", path.read_bytes())

    local = load_corpus(DataConfig(corpus=f"prepared:{out}", eval_fraction=0.2))
    remote = load_corpus(DataConfig(corpus=f"prepared:{url}", eval_fraction=0.2))
    assert remote.fingerprint == local.fingerprint
    assert str(remote.cache_dir).startswith(str(tmp_path / "data" / "mirror" / "gs"))
    streams = [
        c.train_stream(ctx=16, batch_size=4, num_tokens=16 * 4 * 5, seed=1) for c in (local, remote)
    ]
    for _ in range(5):
        np.testing.assert_array_equal(streams[1].next_batch(), streams[0].next_batch())
    np.testing.assert_array_equal(
        remote.eval_batches(ctx=16, batch_size=4, num_batches=2),
        local.eval_batches(ctx=16, batch_size=4, num_batches=2),
    )
