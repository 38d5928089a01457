"""`scaling-lab data NAME`: the summary, and errors printed without a traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from lab.data.config import SYNTHETIC_DEFAULTS
from lab.data.synthetic import build_language


def _main(argv: list[str]) -> int:
    """Through the dispatcher, which turns bad input into one line on stderr."""
    from experiments.main import main

    return main(argv)


def test_synthetic_summary_reports_true_entropy(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["data", "synthetic", "--data-dir", str(tmp_path), "--synthetic", "n_docs=100"]
    argv += ["--synthetic", "states=32", "--synthetic", "zipf=1.5", "--json"]
    assert _main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    options = {**SYNTHETIC_DEFAULTS, "n_docs": 100, "states": 32, "zipf": 1.5}
    assert summary["true_entropy_nats_per_token"] == pytest.approx(
        build_language(options).entropy_rate()
    )
    assert (
        summary["documents"] == 100
        and summary["train_documents"] + summary["eval_documents"] == 100
    )
    assert summary["tokens"] == summary["train_tokens"] + summary["eval_tokens"]
    assert len(summary["fingerprint"]) == 64


def test_text_summary_as_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for i in range(4):
        (tmp_path / f"{i}.txt").write_text("abc" * (i + 1))
    assert _main(["data", f"text:{tmp_path}/*.txt", "--data-dir", str(tmp_path / "d")]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert lines["documents"].strip() == "4" and lines["bytes"].strip() == "30"
    assert lines["tokens"].strip() == "34"  # bytes + one EOS per document
    assert "true_entropy_nats_per_token" not in lines


def test_missing_dataset_prints_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert _main(["data", "tfds:lm1b", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("scaling-lab data: error: TFDS dataset 'lm1b' is not prepared")
        and "Traceback" not in err
    )
    assert "--file_format array_record" in err


def test_import_is_cheap() -> None:
    import subprocess

    code = "import lab.data, sys; print(sorted(m for m in ('jax', 'tensorflow_datasets', 'sentencepiece', 'grain') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_default_corpora_work_without_tfds_or_sentencepiece(tmp_path: Path) -> None:
    """The GPU machines have no tfds: stdlib and synthetic must not need it."""
    import subprocess

    code = f"""
import sys
sys.modules["tensorflow_datasets"] = None  # any import of it now fails
sys.modules["sentencepiece"] = None
from lab.data import DataConfig, load_corpus
a = load_corpus(DataConfig(data_dir={str(tmp_path)!r}))
b = load_corpus(DataConfig(corpus="synthetic", synthetic={{"n_docs": 50}}, data_dir={str(tmp_path)!r}))
batch = a.train_stream(ctx=32, batch_size=4, num_tokens=32 * 4 * 2, seed=0).next_batch()
print(batch.shape, b.num_train_docs + b.num_eval_docs)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "(4, 33) 50"
