"""Compiling the real train step for TPU topologies on this CPU host (libtpu, no chip).

Target names are checked everywhere; the compilations need libtpu (the `tpu` extra, which
`make test` installs) and skip with a message without it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lab.config import MeshConfig, ModelConfig
from lab.errors import ConfigError
from lab.run_config import RunConfig
from lab.tpu_targets import parse_target

# Every shard's minor dimension is a multiple of 128 on the meshes below, so TPU tiling adds
# no padding and the arithmetic byte counts are exact.
SMALL = ModelConfig(
    n_layers=2,
    d_model=256,
    n_heads=4,
    d_ff=1024,
    vocab_size=1024,
    ctx=128,
    compute_dtype="bfloat16",
)


@pytest.mark.parametrize(
    ("name", "chips", "topology", "slices"),
    [
        ("v5e-16", 16, "v5e:4x4", 1),
        ("v5e-8", 8, "v5e:2x4", 1),
        ("v5e-256", 256, "v5e:16x16", 1),
        ("v5p-8", 4, "v5p:2x2x1", 1),
        ("v5p-128", 64, "v5p:4x4x4", 1),
        ("v5p-256x2", 256, "v5p:4x4x8", 2),
        ("v6e-64", 64, "v6e:8x8", 1),
        ("v4-32", 16, "v4:2x2x4", 1),
    ],
)
def test_target_names_follow_cloud_tpu_naming(name, chips, topology, slices) -> None:
    """v4/v5p sizes count TensorCores (two per chip), v5e/v6e count chips; xK is K slices."""
    target = parse_target(name)
    assert (target.chips, target.topology, target.slices) == (chips, topology, slices)
    assert target.peak_flops == target.chips * target.generation.peak_bf16


@pytest.mark.parametrize("name", ["v5e-12", "v5p-7", "v3-8", "tpu", "v5p-128x0"])
def test_bad_target_names_are_clear_errors(name) -> None:
    with pytest.raises(ConfigError):
        parse_target(name)


@pytest.fixture(scope="module")
def aot():
    pytest.importorskip("libtpu", reason="TPU compilation needs libtpu: pip install -e '.[tpu]'")
    from lab import aot

    return aot


def _config(model: ModelConfig, mesh: MeshConfig, batch: int = 16) -> RunConfig:
    return RunConfig(model=model, num_tokens=batch * model.ctx * 100, batch_size=batch, mesh=mesh)


def test_small_model_on_v5e_2x2_shards_parameters_by_the_rules(aot) -> None:
    """Every parameter's per-device shard on the compiled TPU executable is the shape that
    the logical-axis rules give (fsdp = 2 x tensor = 2 on 4 chips), and the step's
    argument bytes are the fp32 params plus two Adam moments, split four ways or fewer."""
    import flax.linen as nn
    import jax

    from lab.counting import param_specs
    from lab.sharding import shard_shape

    config = _config(SMALL, MeshConfig(data=1, fsdp=2, tensor=2))
    step = aot.compile_train_step(config, "v5e-4")
    assert {d.platform for d in step.mesh.devices.flat} == {"tpu"}
    state_in = step.compiled.input_shardings[0][0]
    sizes = dict(step.mesh.shape)
    specs = param_specs(SMALL)
    leaves = jax.tree_util.tree_leaves_with_path(nn.meta.unbox(state_in.params))
    assert len(leaves) == len(specs)
    for path, sharding in leaves:
        key = tuple(getattr(k, "key", None) for k in path)
        shape, logical = specs[key]
        assert sharding.shard_shape(shape) == shard_shape(shape, logical, sizes), key
    report = aot.compile_step(config, "v5e-4")
    param_bytes = 4 * sum(
        math.prod(shard_shape(s, n, sizes)) for s, n in param_specs(SMALL).values()
    )
    # + the batch shard, the step and schedule scalars and the norm vectors' tile padding
    assert 3 * param_bytes <= report.argument_bytes <= 3 * param_bytes + 64 * 1024
    assert report.fits and report.peak_bytes < report.hbm_bytes


def test_two_slice_mesh_puts_the_data_axis_across_slices(aot) -> None:
    """v5e-4x2: 8 chips in 2 slices; the hybrid mesh splits data as 2 (DCN) x 2 (ICI), so
    each half of the data axis lies in one slice and fsdp never crosses the DCN."""
    config = _config(SMALL, MeshConfig(data=-1, fsdp=2))
    step = aot.compile_train_step(config, "v5e-4x2")
    slice_of = np.vectorize(lambda d: d.slice_index)(step.mesh.devices)
    assert dict(step.mesh.shape) == {"data": 4, "fsdp": 2, "tensor": 1}
    assert (slice_of[:2] == slice_of[0, 0, 0]).all() and (slice_of[2:] == slice_of[2, 0, 0]).all()
    assert slice_of[0, 0, 0] != slice_of[2, 0, 0]
    report = aot.compile_step(config, "v5e-4x2")
    assert report.slices == 2 and report.chips == 8 and report.fits
    assert report.flops_ratio == pytest.approx(1.0, abs=0.1)


def test_a_data_axis_that_does_not_split_over_the_slices_is_refused(aot) -> None:
    config = _config(SMALL, MeshConfig(data=1, fsdp=8), batch=16)
    with pytest.raises(ConfigError, match="slices"):
        aot.compile_train_step(config, "v5e-4x2")


def test_gpu_ladder_fits_an_80_gb_gpu_by_the_estimator() -> None:
    """Every shape of gpu_chinchilla_ladder, with the preset's scan and remat, on its 8-GPU
    data-parallel mesh: the arithmetic estimate per GPU is under 80 GB (and it would not be
    without remat, so the setting is what makes it fit)."""
    import dataclasses

    from experiments.sweep_file import load_sweep
    from experiments.target_plan import grid_without_corpus
    from lab.memory import estimate_memory

    points = grid_without_corpus(load_sweep("gpu_chinchilla_ladder")).points
    assert {p.config.model.remat for p in points} == {"save-dots"}
    assert all(p.config.model.scan_layers for p in points)
    totals = [
        estimate_memory(p.config.model, p.config.mesh, p.config.train_batch_size, 8).total
        for p in points
    ]
    assert max(totals) < 80e9
    largest = max(points, key=lambda p: p.N)
    no_remat = dataclasses.replace(largest.config.model, remat="none")
    assert (
        estimate_memory(no_remat, largest.config.mesh, largest.config.train_batch_size, 8).total
        > 80e9
    )


def test_compile_command_reports_a_sweep_per_shape_as_json(aot, capsys) -> None:
    """`scaling-lab compile micro --target v5e-4 --json`: one report per distinct shape (micro
    has 2). XLA counts at least the lab's matmul FLOPs; at d_model 16 and ctx 16 the norms,
    softmax and optimizer (which the lab does not count) add up to a third more."""
    import json

    from experiments.main import main

    assert main(["compile", "micro", "--target", "v5e-4", "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert sorted(r["params"] for r in reports) == [7264, 20672]
    for report in reports:
        assert report["fits"] and report["estimate"].startswith("XLA")
        assert 0.98 <= report["flops_ratio"] <= 1.4


def test_compile_command_names_a_bad_target_in_one_line(capsys) -> None:
    from experiments.main import main

    assert main(["compile", "micro", "--target", "v9-8"]) == 2
    err = capsys.readouterr().err
    assert "unknown TPU target 'v9-8'" in err and "Traceback" not in err


@pytest.mark.slow
def test_largest_tpu_pod_shape_fits_v5p_128_and_xla_counts_the_lab_flops(aot) -> None:
    """tpu_pod's largest shape (~2B) compiled for its v5p-128 topology with the preset's scan
    and save-dots remat: per-chip memory under HBM, XLA's FLOPs within 5% of the lab's count
    of the executed step. Memory at fixed batch, ctx and mesh grows with N (checked with the
    estimator over every shape), so the largest shape fitting means all of them fit."""
    from experiments.sweep_file import load_sweep
    from experiments.target_plan import grid_without_corpus
    from lab.memory import estimate_memory

    points = sorted(grid_without_corpus(load_sweep("tpu_pod")).points, key=lambda p: p.N)
    totals = [
        estimate_memory(p.config.model, p.config.mesh, p.config.train_batch_size, 64).total
        for p in points
    ]
    assert totals == sorted(totals)
    report = aot.compile_step(points[-1].config, "v5p-128")
    assert report.params > 1.9e9 and report.devices == 64
    assert report.fits and report.peak_bytes < 0.95 * report.hbm_bytes
    assert report.flops_ratio == pytest.approx(1.0, abs=0.05)
