"""Sampling from real run directories: a tiny model trained (lab.train.train, ~10 s) on text
that repeats one pattern must reproduce it; the `scaling-lab sample` CLI end to end with its
errors (exit 2); and `scaling-lab sweep samples` writing DIR/samples.json for the report."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from analysis.loading import read_samples
from experiments import main
from lab.completion import SampleError, complete, load_run
from lab.config import MeshConfig, ModelConfig, OptimizerConfig
from lab.data import DataConfig, load_corpus
from lab.run_config import RunConfig
from lab.sampling import SamplingConfig
from lab.train import train

PATTERN = "abcdefg "
STEPS = 40


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pattern")
    (root / "txt").mkdir()
    for i in range(8):
        (root / "txt" / f"d{i}.txt").write_text(PATTERN * 60)
    data = DataConfig(corpus=f"text:{root}/txt/*.txt", data_dir=str(root / "data"), max_epochs=10.0)
    vocab = load_corpus(data).tokenizer.vocab_size
    config = RunConfig(
        model=ModelConfig(n_layers=1, d_model=32, n_heads=2, d_ff=64, vocab_size=vocab, ctx=32),
        num_tokens=STEPS * 8 * 32,
        batch_size=8,
        optimizer=OptimizerConfig(peak_lr=1e-2, warmup_steps=2),
        mesh=MeshConfig(data=-1),
        data=data,
        steps_per_call=20,
        eval_fractions=(1.0,),
        eval_batches=1,
        eval_batch_size=8,
        keep_final_checkpoint=True,
    )
    result = train(config, root / "run", progress=False)
    assert result["loss"] < 0.3, result["loss"]  # it learned the pattern
    return root / "run"


def test_model_trained_on_a_pattern_reproduces_it(run_dir: Path) -> None:
    run = load_run(run_dir)
    assert run.step == STEPS
    want = ("defg " + PATTERN * 3)[:20]
    (greedy,) = complete(run, "abc", max_new_tokens=20, sampling=SamplingConfig(greedy=True))
    assert greedy == want
    sampled = complete(run, "abc", max_new_tokens=20, sampling=SamplingConfig(top_p=0.9), seed=3)
    assert sampled == [want]
    # an empty prompt (a document start) also gives the pattern, from some phase of it
    (start,) = complete(run, "", max_new_tokens=16, sampling=SamplingConfig(greedy=True))
    assert len(start) == 16 and start in PATTERN * 4


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = main.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_end_to_end(run_dir: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["sample", str(run_dir), "--prompt", "cde", "--max-new-tokens", "12", "--greedy"]
    code, out, _ = run_cli(args, capsys)
    assert code == 0 and out.strip() == "cdefg abcdefg a"
    args = [*args[:-1], "--temperature", "0.7", "--top-k", "3", "--seed", "1", "--step", "40"]
    code, out, _ = run_cli([*args, "--json", "--num-samples", "2"], capsys)
    record = json.loads(out)
    assert code == 0 and record["step"] == STEPS
    assert record["completions"] == ["fg abcdefg a"] * 2
    assert record["sampling"]["top_k"] == 3


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--top-p", "1.5"], "top_p must be in (0, 1]"),
        (["--top-p", "0"], "top_p must be in (0, 1]"),
        (["--temperature", "-1"], "temperature must be >= 0"),
        (["--top-k", "0"], "top_k must be an integer >= 1"),
        (["--step", "7"], "no checkpoint at step 7; it has steps [40]"),
        (["--max-new-tokens", "0"], "--max-new-tokens must be >= 1"),
        (["--prompt", "x" * 40], "exceeds the model's context of 32 tokens"),
    ],
)
def test_cli_bad_arguments_exit_2(
    run_dir: Path, capsys: pytest.CaptureFixture, extra: list[str], fragment: str
) -> None:
    code, _, err = run_cli(["sample", str(run_dir), *extra], capsys)
    assert code == 2
    assert fragment in err and "Traceback" not in err


def test_run_without_checkpoint_is_a_clear_error(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run_dir / "config.json", bare / "config.json")
    with pytest.raises(SampleError, match="has no checkpoint to sample from"):
        load_run(bare)
    assert not (bare / "checkpoints").exists()  # looking did not create one
    code, _, err = run_cli(["sample", str(tmp_path)], capsys)
    assert code == 2 and "is not a run directory" in err


def test_sweep_samples_writes_what_the_report_reads(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sweep = tmp_path / "sweep"
    for run_id in ("small", "best"):
        shutil.copytree(run_dir, sweep / "runs" / run_id)
    (sweep / "runs" / "big").mkdir(parents=True)  # finished, weights dropped
    shutil.copy(run_dir / "config.json", sweep / "runs" / "big" / "config.json")
    rows = [
        {"run_id": "small", "budget": "1e12", "N": "100", "D": "10", "loss": "2.0"},
        {"run_id": "best", "budget": "1e12", "N": "200", "D": "5", "loss": "1.0"},
        {"run_id": "big", "budget": "1e12", "N": "400", "D": "2", "loss": "1.5"},
        {"run_id": "bad", "budget": "1e12", "N": "50", "D": "20", "loss": ""},
    ]
    with open(sweep / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, [*rows[0], "status"])
        writer.writeheader()
        writer.writerows({**r, "status": "done" if r["loss"] else "diverged"} for r in rows)
    args = ["sweep", "samples", str(sweep), "--prompt", "ab", "--greedy", "--max-new-tokens", "9"]
    code, out, _ = run_cli(args, capsys)
    assert code == 0 and "skipped big (largest at 1e+12): no checkpoint" in out
    warnings: list[str] = []
    samples = read_samples(sweep / "samples.json", warnings)
    assert not warnings
    assert [(s["role"], s["run_id"]) for s in samples] == [
        ("smallest", "small"),
        ("optimal", "best"),
    ]
    assert all(s["completion"] == "cdefg abc" and s["prompt"] == "ab" for s in samples)
    assert samples[1]["loss"] == 1.0 and samples[1]["N"] == 200 and samples[1]["budget"] == 1e12
