"""Packing: 4 runs on 2-device sub-meshes of the 8 fake CPU devices, at the same time, each
ending bitwise where the same run alone on 2 devices ends; the packing rule and its errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from test_train_run import _final_params, tiny_run

from lab import packing
from lab.config import OptimizerConfig
from lab.errors import ConfigError
from lab.packing import devices_for, sub_meshes, train_packed
from lab.train import train


def test_four_runs_on_two_device_sub_meshes_equal_each_run_alone(
    tmp_path, data_config, monkeypatch, train_calls
):
    configs = [
        tiny_run(
            data_config, steps=12, steps_per_call=4, seed=s, optimizer=OptimizerConfig(peak_lr=lr)
        )
        for s, lr in enumerate((1e-2, 3e-3, 2e-2, 5e-3))
    ]
    packed = train_packed(
        configs, [tmp_path / f"p{i}" for i in range(4)], devices_per_run=2, compilation_cache=None
    )
    assert sorted(train_calls.devices) == [(0, 1), (2, 3), (4, 5), (6, 7)]  # every slot once
    assert train_calls.most_at_once == 4  # all four at the same time
    monkeypatch.undo()
    for i, config in enumerate(configs):
        alone = train(
            config, tmp_path / f"a{i}", progress=False, compilation_cache=None,
            devices=jax.devices()[:2],
        )  # fmt: skip
        assert packed[i]["provenance"]["mesh"] == alone["provenance"]["mesh"] == {
            "data": 2, "fsdp": 1, "tensor": 1,
        }  # fmt: skip
        assert packed[i]["loss"] == alone["loss"]  # bitwise: same program, other devices
        assert packed[i]["eval_curve"] == alone["eval_curve"]
        got, want = _final_params(tmp_path / f"p{i}"), _final_params(tmp_path / f"a{i}")
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert len({r["loss"] for r in packed}) == 4


def test_sub_meshes_and_the_packing_rule():
    assert [len(s) for s in sub_meshes(2)] == [2, 2, 2, 2]
    assert sub_meshes(8) == [jax.devices()]
    with pytest.raises(ConfigError, match="devices_per_run=3 does not divide the 8 devices"):
        sub_meshes(3)
    # N / params_per_device, up to a power of two, within the devices and the batch
    assert devices_for(2e4, 1e6, total=8, batch=8) == 1
    assert devices_for(3e6, 1e6, total=8, batch=8) == 4
    assert devices_for(1e9, 1e6, total=8, batch=8) == 8
    assert devices_for(1e9, 1e6, total=8, batch=4) == 4  # 8 ways would split a row
    assert devices_for(5e6, 1e6, total=6, batch=12) == 2  # 8 > 6; 4 does not divide 6


def test_a_failing_run_stops_the_slots_and_raises(tmp_path):
    def ok(slot):
        return len(slot)

    def bad(slot):
        raise ConfigError("boom")

    assert packing.run_in_slots([ok, ok, ok], sub_meshes(4)) == [4, 4, 4]
    with pytest.raises(ConfigError, match="boom"):
        packing.run_in_slots([ok, bad, ok], sub_meshes(4))
