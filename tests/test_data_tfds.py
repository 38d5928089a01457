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


def test_a_bucket_data_dir_is_refused_in_one_line_before_anything_is_written(
    tmp_path: Path, monkeypatch
) -> None:
    """array_record reads local files only: a gs:// data_dir must not become a local folder
    named `gs:` (what pathlib made of it) nor hang in the reader; it names the copy to make."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"opens local files only.*rsync") as error:
        DataConfig(corpus="tfds:c4/en", data_dir="gs://bucket/tensorflow_datasets")
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []
