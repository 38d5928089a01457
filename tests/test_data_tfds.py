"""TFDS without TensorFlow: local text -> ArrayRecord -> tfds.data_source, and clear errors."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from lab.data import DataConfig, DataError, load_corpus
from lab.data.textds import BUILDER_NAME, build_text_dataset


def test_tensorflow_is_not_installed() -> None:
    assert importlib.util.find_spec("tensorflow") is None


def test_text_round_trip_through_array_record(tmp_path: Path) -> None:
    tfds = pytest.importorskip("tensorflow_datasets")
    texts = ["first document\n", "zweites Dokument: é, ß, ☃", "", "x" * 10_000]
    files = []
    for i, text in enumerate(texts):
        path = tmp_path / f"f{i}.txt"
        path.write_text(text, encoding="utf-8")
        files.append(path)
    build_dir = tmp_path / "ds"
    build_text_dataset(files, [p.name for p in files], build_dir)
    assert list((build_dir / BUILDER_NAME / "1.0.0").glob("*.array_record*"))
    source = tfds.data_source(BUILDER_NAME, split="train", data_dir=str(build_dir), download=False)
    records = sorted((source[i] for i in range(len(source))), key=lambda r: int(r["index"]))
    assert [r["text"].decode("utf-8") for r in records] == texts
    assert [r["id"].decode() for r in records] == [p.name for p in files]
    # the same prepared dataset read as a `tfds:` corpus (the path lm1b, c4, ... take)
    corpus = load_corpus(
        DataConfig(corpus=f"tfds:{BUILDER_NAME}", data_dir=str(build_dir), eval_fraction=0.25)
    )
    assert corpus.num_train_docs + corpus.num_eval_docs == len(texts)
    summary = corpus.summary()
    assert summary["bytes"] == sum(len(t.encode()) for t in texts)
    assert "tensorflow" not in sys.modules


def test_missing_dataset_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_corpus(DataConfig(corpus="tfds:lm1b", data_dir=str(tmp_path)))
    message = str(info.value)
    assert f"not prepared in {tmp_path}" in message
    assert f"tfds build lm1b --data_dir {tmp_path} --file_format array_record" in message
    assert info.value.__traceback__ is not None and info.value.__cause__ is None


def test_tfrecord_dataset_asks_for_array_record(tmp_path: Path) -> None:
    version_dir = tmp_path / "c4" / "en" / "3.0.1"
    version_dir.mkdir(parents=True)
    (version_dir / "dataset_info.json").write_text(json.dumps({"fileFormat": "tfrecord"}))
    with pytest.raises(DataError, match=r"stored as tfrecord.*--file_format array_record"):
        load_corpus(DataConfig(corpus="tfds:c4/en", data_dir=str(tmp_path)))


def test_broken_dataset_is_wrapped(tmp_path: Path) -> None:
    version_dir = tmp_path / "broken_ds" / "1.0.0"
    version_dir.mkdir(parents=True)
    (version_dir / "dataset_info.json").write_text(json.dumps({"fileFormat": "array_record"}))
    with pytest.raises(DataError, match="cannot open TFDS dataset 'broken_ds'"):
        load_corpus(DataConfig(corpus="tfds:broken_ds", data_dir=str(tmp_path)))


def test_a_tfds_data_dir_in_a_bucket_is_mirrored_and_reads_as_the_local_one(
    tmp_path: Path, gcs_bucket, monkeypatch
) -> None:
    """`data_dir = "gs://..."`: array_record reads local files only, so the dataset is mirrored
    to local disk (lab.data.remote_dir) and gives the same corpus as the local data dir; a
    second load copies nothing again; a missing dataset is a one-line error."""
    import fsspec

    monkeypatch.setenv("SCALING_LAB_DATA", str(tmp_path / "data"))
    files = []
    for i in range(6):
        files.append(tmp_path / f"f{i}.txt")
        files[-1].write_text(f"document {i}: " + "scaling " * (i + 3))
    local = tmp_path / "tfds"
    build_text_dataset(files, [p.name for p in files], local)
    url = gcs_bucket.url("tensorflow_datasets")
    fs = fsspec.filesystem("gs")
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        fs.pipe_file(f"{url}/{path.relative_to(local).as_posix()}", path.read_bytes())

    name = f"tfds:{BUILDER_NAME}"
    want = load_corpus(DataConfig(corpus=name, data_dir=str(local), eval_fraction=0.25))
    got = load_corpus(DataConfig(corpus=name, data_dir=url, eval_fraction=0.25))
    assert got.fingerprint == want.fingerprint
    assert got.summary()["bytes"] == want.summary()["bytes"]
    assert str(got.cache_dir).startswith(str(tmp_path / "data" / "mirror" / "gs"))
    assert not list(Path().glob("gs:*"))  # no local folder named after the URL

    mirrored = sorted(tmp_path.joinpath("data", "mirror").rglob("*.array_record*"))
    stamps = [p.stat().st_mtime_ns for p in mirrored]
    load_corpus(DataConfig(corpus=name, data_dir=url, eval_fraction=0.25))
    assert [p.stat().st_mtime_ns for p in mirrored] == stamps  # nothing copied twice

    with pytest.raises(DataError, match="not in gs://"):
        load_corpus(DataConfig(corpus="tfds:no_such_set", data_dir=url))
