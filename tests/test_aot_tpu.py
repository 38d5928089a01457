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
    n_layers=2, d_model=256, n_heads=4, d_ff=1024, vocab_size=1024, ctx=128, compute_dtype="bfloat16"
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
