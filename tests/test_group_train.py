"""A group of runs trained by one vmapped step ends where each run alone ends.

Three tiny runs (test_train_run's model and synthetic corpus) with different peak LRs,
warmups, seeds and lengths: each member's metrics (losses, LRs), eval curve and final
parameters match its standalone run within fp32 reduction tolerance, and its result.json is
the standalone one apart from timings and the group record. A group killed with SIGKILL
mid-way and resumed ends bitwise where the uninterrupted group ends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_train_run import _final_params, tiny_run

from lab.config import OptimizerConfig
from lab.errors import ConfigError
from lab.group_train import train_group
from lab.train import train

RTOL = 1e-5
TIMING_KEYS = {"timing", "throughput"}  # wall time: the group's, shared by its members
LOSS_KEYS = {"loss"}


def group_configs(data_config, **common):
    """Different LR, warmup, seed and length: what a group may vary."""
    return [
        tiny_run(data_config, steps=24, **common),
        tiny_run(
            data_config,
            steps=16,
            optimizer=OptimizerConfig(peak_lr=3e-3, warmup_steps=4),
            seed=1,
            **common,
        ),
        tiny_run(
            data_config, steps=32, optimizer=OptimizerConfig(peak_lr=2e-2, warmup_steps=0), **common
        ),
    ]


def lines(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def comparable(result: dict) -> dict:
    """result.json without wall-time numbers, the finishing time, the group record and the
    losses (compared with a tolerance separately)."""
    out = {k: v for k, v in result.items() if k not in TIMING_KEYS | LOSS_KEYS | {"eval_curve"}}
    out["provenance"] = {
        k: v for k, v in result["provenance"].items() if k not in ("finished_at", "group")
    }
    out["eval_curve"] = [{k: v for k, v in p.items() if k != "loss"} for p in result["eval_curve"]]
    return out


def test_group_members_match_their_standalone_runs(tmp_path, data_config):
    configs = group_configs(data_config, steps_per_call=4, checkpoint_every_steps=8)
    grouped = train_group(configs, [tmp_path / f"g{i}" for i in range(3)], progress=False)
    for i, config in enumerate(configs):
        alone = train(config, tmp_path / f"s{i}", progress=False)
        member = grouped[i]
        assert member["status"] == alone["status"] == "done"
        assert comparable(member) == comparable(alone)  # tokens, steps, eval points, config
        assert member["loss"] == pytest.approx(alone["loss"], rel=RTOL)
        np.testing.assert_allclose(
            [p["loss"] for p in member["eval_curve"]],
            [p["loss"] for p in alone["eval_curve"]],
            rtol=RTOL,
        )
        got, want = lines(tmp_path / f"g{i}"), lines(tmp_path / f"s{i}")
        assert (
            [x["step"] for x in got]
            == [x["step"] for x in want]
            == list(range(1, config.num_steps + 1))
        )
        np.testing.assert_allclose([x["lr"] for x in got], [x["lr"] for x in want], rtol=1e-7)
        np.testing.assert_allclose([x["loss"] for x in got], [x["loss"] for x in want], rtol=RTOL)
        params, reference = _final_params(tmp_path / f"g{i}"), _final_params(tmp_path / f"s{i}")
        assert params.keys() == reference.keys()
        for name in reference:
            np.testing.assert_allclose(params[name], reference[name], rtol=RTOL, atol=1e-6)
        group = member["provenance"]["group"]
        assert group["size"] == 3 and group["index"] == i
        assert group["members"] == [c.config_hash() for c in configs]
    # the members really differ: another LR, another length
    assert [r["steps"] for r in grouped] == [24, 16, 32]
    assert len({r["loss"] for r in grouped}) == 3
    # a finished group is returned, not retrained
    again = train_group(configs, [tmp_path / f"g{i}" for i in range(3)], progress=False)
    assert again == grouped


def test_a_group_of_different_shapes_is_refused(tmp_path, data_config):
    configs = [tiny_run(data_config), tiny_run(data_config, batch_size=16, num_tokens=24 * 16 * 32)]
    with pytest.raises(ConfigError, match="differs from run 0 in a setting compiled"):
        train_group(configs, [tmp_path / "a", tmp_path / "b"], progress=False)
    assert not (tmp_path / "a").exists()  # refused before anything is written


GROUP_SCRIPT = """
import json, sys
from lab.group_train import train_group
from lab.run_config import RunConfig
configs = [RunConfig.from_dict(c) for c in json.loads(open(sys.argv[1]).read())]
train_group(configs, sys.argv[2:], progress=False, compilation_cache=None)
"""


def _newest_checkpoint(run: Path) -> int:
    steps = [
        int(p.name)
        for p in (run / "checkpoints").glob("[0-9]*")
        if p.name.isdigit() and (p / "state").exists()
    ]
    return max(steps, default=0)


@pytest.mark.slow
def test_sigkill_of_a_group_then_resume_equals_the_uninterrupted_group(tmp_path, data_config):
    configs = group_configs(data_config, steps_per_call=2, checkpoint_every_steps=4)
    configs = [
        tiny_run(
            data_config,
            steps=c.num_steps * 3,
            optimizer=c.optimizer,
            seed=c.seed,
            steps_per_call=2,
            checkpoint_every_steps=4,
        )
        for c in configs
    ]  # 72, 48 and 96 steps: the kill lands after the shortest member (1) ended
    config_file = tmp_path / "group.json"
    config_file.write_text(json.dumps([c.to_dict() for c in configs]))
    killed = [tmp_path / f"k{i}" for i in range(3)]
    command = [sys.executable, "-c", GROUP_SCRIPT, str(config_file), *map(str, killed)]
    env = {**os.environ, "SCALING_LAB_QUIET": "1"}
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while _newest_checkpoint(killed[2]) <= 52:  # past member 1's end (48)
        assert first.poll() is None, first.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (killed[1] / "result.json").exists() and not (killed[2] / "result.json").exists()
    # as if killed mid-save: member 0's newest checkpoint never committed, member 2's did
    newest = _newest_checkpoint(killed[0])
    shutil.rmtree(killed[0] / "checkpoints" / str(newest))
    assert _newest_checkpoint(killed[2]) >= newest > _newest_checkpoint(killed[0])

    second = subprocess.run(command, env=env, capture_output=True, timeout=300)
    assert second.returncode == 0, second.stderr.decode()[-2000:]
    reference = [tmp_path / f"r{i}" for i in range(3)]
    uninterrupted = train_group(configs, reference, progress=False)
    for i in range(3):
        resumed = json.loads((killed[i] / "result.json").read_text())
        assert resumed["loss"] == uninterrupted[i]["loss"]  # bitwise
        assert resumed["eval_curve"] == uninterrupted[i]["eval_curve"]
        got, want = _final_params(killed[i]), _final_params(reference[i])
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        logged = lines(killed[i])
        assert [x["step"] for x in logged] == list(range(1, configs[i].num_steps + 1))
        assert [x["loss"] for x in logged] == [x["loss"] for x in lines(reference[i])]
