"""TensorBoard event files of a run, read back with TensorBoard's own event reader.

The scalars TensorBoard shows must be the JSONL logs' values (as float32, the event
format's precision), step for step: after a run that died past its checkpoint and resumed,
each step exactly once (the resumed process's event file purges the dead one's later steps).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator, event_multiplexer
from test_train_run import tiny_run

from lab import step_meter
from lab.tensorboard_log import ENABLE_ENV, EVAL_TAG, STEP_TAGS
from lab.train import train

REPO = Path(__file__).resolve().parent.parent
MICRO = REPO / "experiments" / "configs" / "micro.toml"


def shown(run: Path) -> dict[str, list[tuple[int, float]]]:
    """What TensorBoard plots for `run`: (step, value) per tag, after its purges."""
    reader = event_accumulator.EventAccumulator(
        str(run), size_guidance={event_accumulator.SCALARS: 0}
    )
    reader.Reload()
    return {
        tag: [(e.step, e.value) for e in reader.Scalars(tag)] for tag in reader.Tags()["scalars"]
    }


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def as_logged(records: list[dict], field: str) -> list[tuple[int, float]]:
    return [(r["step"], float(np.float32(r[field]))) for r in records]


def test_events_equal_the_jsonl_logs_and_a_resume_shows_each_step_once(
    tmp_path, data_config, monkeypatch
):
    config = tiny_run(data_config, steps=24, checkpoint_every_steps=8, steps_per_call=2)
    run = tmp_path / "run"
    real_line = step_meter.StepMeter._line

    def dies_at_step_13(self, step, *args):  # after the checkpoint at 8, before the one at 16
        if step == 13:
            raise KeyboardInterrupt
        return real_line(self, step, *args)

    monkeypatch.setattr(step_meter.StepMeter, "_line", dies_at_step_13)
    with pytest.raises(KeyboardInterrupt):
        train(config, run, progress=False)
    monkeypatch.undo()
    first = shown(run)
    assert [s for s, _ in first["train/loss"]] == list(range(1, 13))  # 9-12: to be purged

    train(config, run, progress=False)
    assert len(list(run.glob("events.out.tfevents.*"))) == 2  # one per process start
    events, lines = shown(run), jsonl(run / "metrics.jsonl")
    assert [line["step"] for line in lines] == list(range(1, 25))
    assert set(events) == {*STEP_TAGS.values(), EVAL_TAG}
    for field, tag in STEP_TAGS.items():
        assert events[tag] == as_logged(lines, field), tag
    assert events[EVAL_TAG] == as_logged(jsonl(run / "evals.jsonl"), "loss")
    assert [s for s, _ in events[EVAL_TAG]] == [6, 12, 24]


def test_a_sweeps_runs_are_separate_tensorboard_runs_of_its_directory(tmp_path):
    """`tensorboard --logdir SWEEP`: one TensorBoard run per run directory, its own values."""
    sweep = tmp_path / "sweep"
    command = [sys.executable, "-m", "experiments.main", "sweep", "run", str(MICRO)]
    command += ["--out", str(sweep), "--jobs", "1"]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True, timeout=300)
    runs = sorted(p.parent.name for p in sweep.glob("runs/*/result.json"))
    assert len(runs) == 6
    board = event_multiplexer.EventMultiplexer().AddRunsFromDirectory(str(sweep))
    board.Reload()
    assert sorted(board.Runs()) == [f"runs/{run}" for run in runs]
    for run in runs:
        lines = jsonl(sweep / "runs" / run / "metrics.jsonl")
        losses = [(e.step, e.value) for e in board.Scalars(f"runs/{run}", "train/loss")]
        assert losses == as_logged(lines, "loss"), run


def test_the_switch_turns_tensorboard_off(tmp_path, data_config, monkeypatch):
    monkeypatch.setenv(ENABLE_ENV, "0")
    off = tmp_path / "off"
    train(tiny_run(data_config, steps=4), off, progress=False)
    assert (off / "metrics.jsonl").exists() and not list(off.glob("events.out.tfevents.*"))
