"""A training run end to end: token accounting, eval points, result record, divergence, resume.

Tiny model (d_model 32) on a small synthetic corpus, so each run takes a few seconds. The
kill-and-resume test runs the real CLI in subprocesses and SIGKILLs / SIGTERMs them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lab.config import MeshConfig, ModelConfig, OptimizerConfig
from lab.data import DataConfig, load_corpus
from lab.run_config import RunConfig
from lab.train import train

PROVENANCE_FIELDS = {
    "git_commit",
    "config_hash",
    "corpus_fingerprint",
    "versions",
    "device_kind",
    "device_count",
    "process_count",
    "mesh",
    "seed",
}


def tiny_run(data_config: DataConfig, steps: int = 24, **overrides) -> RunConfig:
    vocab = load_corpus(data_config).tokenizer.vocab_size
    model = ModelConfig(n_layers=1, d_model=32, n_heads=2, d_ff=128, vocab_size=vocab, ctx=32)
    settings = {
        "model": model,
        "num_tokens": steps * 8 * 32,
        "batch_size": 8,
        "optimizer": OptimizerConfig(peak_lr=1e-2, warmup_steps=2),
        "mesh": MeshConfig(data=-1),
        "data": data_config,
        "eval_fractions": (0.25, 0.5, 1.0),
        "eval_batches": 2,
        "eval_batch_size": 8,
        **overrides,
    }
    return RunConfig(**settings)


def test_run_trains_exactly_d_tokens_and_records_everything(tmp_path, data_config):
    config = tiny_run(data_config, steps_per_call=4)
    result = train(config, tmp_path / "run", progress=False)

    assert result["status"] == "done"
    assert result["D"] == config.num_tokens == result["steps"] * 8 * 32
    assert result["N"] == config.model.num_params()
    assert result["C_6N"] == pytest.approx(6 * result["N"] * result["D"])
    assert result["C_detailed"] == pytest.approx(
        config.model.flops_per_token("causal") * result["D"]
    )
    assert [p["step"] for p in result["eval_curve"]] == [6, 12, 24]
    assert [p["fraction"] for p in result["eval_curve"]] == [0.25, 0.5, 1.0]
    assert result["true_entropy"] == pytest.approx(load_corpus(data_config).true_entropy)
    # Chunks of 4, cut to 2 to land on the eval steps 6 and 12: one compiled loop; its first
    # call (4 steps) compiles, and those steps count as training at the median pace.
    first = result["timing"]["first_calls_steps_s"]
    assert first == pytest.approx(4 * result["throughput"]["median_step_time_s"])
    assert 0 <= result["timing"]["eval_compile_s"] <= result["timing"]["eval_s"]
    assert 0 < result["true_entropy"] < np.log(32)  # the language's entropy rate, recorded
    assert result["loss"] == result["eval_curve"][-1]["loss"]
    assert result["eval_curve"][-1]["loss"] < result["eval_curve"][0]["loss"]
    assert PROVENANCE_FIELDS <= set(result["provenance"])
    assert result["provenance"]["corpus_fingerprint"] == load_corpus(data_config).fingerprint

    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == list(range(1, 25))
    assert lines[-1]["tokens"] == config.num_tokens
    assert {"loss", "lr", "grad_norm", "step_time_s", "tokens_per_s", "mfu"} <= set(lines[0])
    assert lines[-1]["lr"] == pytest.approx(0.1 * 1e-2, rel=1e-5)  # cosine ends at 10% of peak

    # a finished run is returned, not retrained
    before = (tmp_path / "run" / "metrics.jsonl").stat().st_mtime_ns
    assert train(config, tmp_path / "run", progress=False) == result
    assert (tmp_path / "run" / "metrics.jsonl").stat().st_mtime_ns == before


def test_first_call_excess_is_measured_against_the_median_of_the_rest():
    from lab.train import _first_call_excess

    assert _first_call_excess([0.5, 0.1, 0.3, 0.2]) == pytest.approx(0.3)
    assert _first_call_excess([0.1, 0.2, 0.2]) == 0.0  # a fast first call costs nothing extra
    assert _first_call_excess([0.7]) == 0.0


def test_steps_per_call_does_not_change_the_numbers(tmp_path, data_config):
    single = train(tiny_run(data_config, steps=12), tmp_path / "k1", progress=False)
    scanned = train(
        tiny_run(data_config, steps=12, steps_per_call=3), tmp_path / "k3", progress=False
    )
    assert scanned["loss"] == pytest.approx(single["loss"], rel=1e-5)


def test_a_workers_next_run_of_a_shape_reuses_its_functions_exactly(tmp_path, data_config):
    """A sweep worker's second budget of one shape skips tracing, and trains bitwise the same
    as it would from scratch (the schedule is optimizer state, not compiled in)."""
    from lab import step_cache

    step_cache.clear()
    train(tiny_run(data_config, steps=16, steps_per_call=4), tmp_path / "a", progress=False)
    kept = dict(step_cache._memo)
    other = tiny_run(
        data_config, steps=10, steps_per_call=4, optimizer=OptimizerConfig(peak_lr=3e-3)
    )
    reused = train(other, tmp_path / "b", progress=False)
    assert step_cache._memo == kept  # a hit: nothing new was built
    step_cache.clear()
    fresh = train(other, tmp_path / "c", progress=False)
    assert reused["loss"] == fresh["loss"]
    assert reused["eval_curve"] == fresh["eval_curve"]
    lines = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    again = [json.loads(x) for x in (tmp_path / "c" / "metrics.jsonl").read_text().splitlines()]
    assert [x["loss"] for x in lines] == [x["loss"] for x in again]
    assert [x["lr"] for x in lines] == [x["lr"] for x in again]


def test_absurd_learning_rate_is_recorded_as_diverged(tmp_path, data_config):
    config = tiny_run(data_config, optimizer=OptimizerConfig(peak_lr=10.0, warmup_steps=1))
    result = train(config, tmp_path / "run", progress=False)
    assert result["status"] == "diverged"
    assert result["loss"] is None
    assert 1 <= result["divergence"]["step"] <= config.num_steps
    assert result["divergence"]["reason"]
    assert json.loads((tmp_path / "run" / "result.json").read_text())["status"] == "diverged"


def test_run_dir_of_another_config_is_refused(tmp_path, data_config):
    from lab.errors import ConfigError

    train(tiny_run(data_config, steps=4, eval_fractions=(1.0,)), tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="different config"):
        train(tiny_run(data_config, steps=8), tmp_path / "run", progress=False)


def _final_params(run: Path) -> dict[str, np.ndarray]:
    import orbax.checkpoint as ocp

    directory = (run / "checkpoints").absolute()
    with ocp.CheckpointManager(directory) as manager:
        restored = manager.restore(
            manager.latest_step(), args=ocp.args.Composite(state=ocp.args.StandardRestore())
        )
    params = restored["state"]["params"]
    import jax

    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree.leaves_with_path(params)}


def _wait_for_checkpoint(run: Path, process: subprocess.Popen, beyond: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        steps = [  # finished checkpoints only: orbax writes into "<step>.orbax-checkpoint-tmp"
            int(p.name)
            for p in (run / "checkpoints").glob("[0-9]*")
            if p.name.isdigit() and (p / "state").exists()
        ]
        if steps and max(steps) > beyond:
            return
        if process.poll() is not None:
            raise AssertionError(f"run ended before it could be interrupted: {process.returncode}")
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def test_sigkill_and_sigterm_then_resume_equals_uninterrupted(tmp_path, data_config):
    config = tiny_run(data_config, steps=96, checkpoint_every_steps=8, steps_per_call=2)
    config_file = tmp_path / "run.json"
    config_file.write_text(json.dumps(config.to_dict()))
    run = tmp_path / "interrupted"
    command = [sys.executable, "-m", "experiments.main", "train", "--config", str(config_file)]
    command += ["--out", str(run)]
    env = {**os.environ, "SCALING_LAB_QUIET": "1"}

    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_checkpoint(run, first, beyond=8)
    first.send_signal(signal.SIGKILL)
    first.wait()

    second = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_checkpoint(run, second, beyond=24)
    second.send_signal(signal.SIGTERM)  # preemption notice: checkpoint, then exit 75
    _, err = second.communicate(timeout=120)
    assert second.returncode == 75, err.decode()[-2000:]
    assert not (run / "result.json").exists()

    third = subprocess.run(command, env=env, capture_output=True, timeout=300)
    assert third.returncode == 0, third.stderr.decode()[-2000:]
    resumed = json.loads((run / "result.json").read_text())

    reference = train(config, tmp_path / "reference", progress=False)
    assert resumed["loss"] == reference["loss"]  # bitwise on the same machine
    assert [p["loss"] for p in resumed["eval_curve"]] == [
        p["loss"] for p in reference["eval_curve"]
    ]
    got, want = _final_params(run), _final_params(tmp_path / "reference")
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 97))  # no step logged twice or lost across the kills
