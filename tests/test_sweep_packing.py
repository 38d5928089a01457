"""The runner packs runs side by side on sub-meshes: `[packing] devices_per_run = 2` on the 8
fake CPU devices trains the `micro` sweep's runs 2 devices each, several at once, and each
ends bitwise where the same run alone on 2 devices ends."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import pytest

from experiments import sweep_dir
from experiments.options import RunnerOptions
from experiments.packed_loop import DevicePool
from experiments.runner import run_sweep
from lab.errors import ConfigError
from lab.run_config import RunConfig
from lab.train import train

REPO = Path(__file__).resolve().parent.parent
MICRO = (REPO / "experiments" / "configs" / "micro.toml").read_text()
OPTIONS = RunnerOptions(jobs=1, progress=False, compilation_cache=None, heartbeat_s=1.0)


def test_the_runner_trains_runs_side_by_side_on_two_device_sub_meshes(
    tmp_path, monkeypatch, train_calls
):
    assert jax.device_count() == 8
    sweep_file = tmp_path / "micro.toml"
    sweep_file.write_text(MICRO + '\n[packing]\ngroup = "never"\ndevices_per_run = 2\n')
    out = tmp_path / "out"
    report = run_sweep(str(sweep_file), str(out), OPTIONS)
    monkeypatch.undo()
    assert report.exit_code == 0 and len(report.trained) == 6 and not report.failed
    blocks = train_calls.devices
    assert len(blocks) == 6 and set(blocks) <= {(0, 1), (2, 3), (4, 5), (6, 7)}
    assert train_calls.most_at_once >= 2  # side by side, not one after another
    rows = sweep_dir.read_plan(out)["points"]
    assert (out / "results.csv").read_text().count("\n") == 1 + len(rows)  # every run tabled
    for point in rows[:2]:
        result = sweep_dir.read_result(out, point["run_id"])
        assert result["provenance"]["mesh"] == {"data": 2, "fsdp": 1, "tensor": 1}
        config = RunConfig.from_dict(
            json.loads((out / "runs" / point["run_id"] / "config.json").read_text())
        )
        alone = train(
            config, tmp_path / f"alone_{point['run_id']}", progress=False,
            compilation_cache=None, devices=jax.devices()[:2],
        )  # fmt: skip
        assert alone["loss"] == result["loss"]  # bitwise: same program, other devices
        assert alone["steps"] == result["steps"]


def test_the_device_pool_hands_out_aligned_free_blocks() -> None:
    pool = DevicePool(list(range(8)))
    four = pool.take(4)
    assert four == [0, 1, 2, 3]
    assert pool.take(2) == [4, 5] and pool.take(4) is None  # no aligned 4 left
    assert pool.take(2) == [6, 7] and pool.take(1) is None
    pool.give_back(four)
    assert pool.take(1) == [0] and pool.take(2) == [2, 3] and not pool.idle
    with pytest.raises(ConfigError, match="does not divide this worker's 8"):
        pool.take(3)
