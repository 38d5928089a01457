"""Memory estimate against the real bytes of a sharded state, and the refusal message."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from lab.config import MeshConfig, ModelConfig, OptimizerConfig
from lab.errors import ConfigError, OutOfMemoryError
from lab.memory import MemoryEstimate, check_fits, estimate_memory
from lab.optim import make_optimizer
from lab.sharding import batch_sharding, make_mesh
from lab.train_step import init_train_state, make_train_step

CONFIG = ModelConfig(n_layers=2, d_model=64, n_heads=8, d_ff=256, ctx=64, mlp="swiglu")


def _device0_bytes(tree) -> int:
    """Bytes the first device really holds for a pytree of (sharded) arrays."""
    device = jax.devices()[0]
    return sum(
        shard.data.nbytes
        for leaf in jax.tree.leaves(tree)
        for shard in leaf.addressable_shards
        if shard.device == device
    )


@pytest.mark.parametrize("mesh_shape", [(1, 1, 1), (2, 2, 2)])
def test_estimate_matches_real_state_bytes(mesh_shape: tuple[int, int, int]) -> None:
    n = mesh_shape[0] * mesh_shape[1] * mesh_shape[2]
    mesh = make_mesh(MeshConfig(*mesh_shape), jax.devices()[:n])
    optimizer, _ = make_optimizer(OptimizerConfig(), 10)
    state, _ = init_train_state(CONFIG, optimizer, mesh, jax.random.key(0))
    estimate = estimate_memory(CONFIG, mesh_shape, batch_size=8)
    assert estimate.weights == _device0_bytes(state.params)
    assert estimate.gradients == estimate.weights
    # Adam's two moments, plus scalars the estimate leaves out: two int32 update counters
    # and the schedule's six f32 numbers (lab.optim.ScheduleState).
    assert 0 <= _device0_bytes(state.opt_state) - estimate.optimizer <= 2 * 4 + 6 * 4
    if mesh_shape == (1, 1, 1):
        assert estimate.weights == 4 * CONFIG.num_params()
    assert estimate.total == (
        estimate.weights + estimate.gradients + estimate.optimizer + estimate.activations
    )


def test_activation_estimate_is_sane_against_xla() -> None:
    mesh = make_mesh(MeshConfig(1, 1, 1), jax.devices()[:1])
    optimizer, _ = make_optimizer(OptimizerConfig(), 10)
    state, shardings = init_train_state(CONFIG, optimizer, mesh, jax.random.key(0))
    step = make_train_step(CONFIG, optimizer, mesh, shardings)
    batch = jax.ShapeDtypeStruct((16, CONFIG.ctx + 1), jnp.int32, sharding=batch_sharding(mesh))
    temp = step.lower(state, batch).compile().memory_analysis().temp_size_in_bytes
    estimate = estimate_memory(CONFIG, (1, 1, 1), batch_size=16)
    # XLA's temporaries hold the saved activations plus gradients and scratch.
    assert 0.5 * temp <= estimate.activations + estimate.gradients <= 2.0 * temp
    # Activations scale with the per-device batch: doubling data halves them.
    halved = estimate_memory(CONFIG, (2, 1, 1), batch_size=16)
    assert halved.activations == estimate.activations // 2


def test_bf16_and_sharding_shrink_the_estimate() -> None:
    bf16 = ModelConfig(**{**CONFIG.to_dict(), "compute_dtype": "bfloat16"})
    fp32 = estimate_memory(CONFIG, (1, 1, 1), 16)
    # bf16 halves the saved activations; fp32 logits, softmax and attention scores remain.
    assert (
        0.5 * fp32.activations
        < estimate_memory(bf16, (1, 1, 1), 16).activations
        < 0.7 * fp32.activations
    )
    fsdp = estimate_memory(CONFIG, (1, 8, 1), 16)
    assert fsdp.weights < fp32.weights / 4
    assert estimate_memory(CONFIG, "-1,1,1", 16, num_devices=8).activations == (
        estimate_memory(CONFIG, (8, 1, 1), 16).activations
    )


def test_check_fits_refuses_with_numbers() -> None:
    gib = 2**30
    estimate = MemoryEstimate(gib, gib, 2 * gib, 20 * gib, 24 * gib)
    check_fits(estimate, device_bytes=80 * gib)
    with pytest.raises(OutOfMemoryError, match=r"needs about 24.0 GiB per device") as info:
        check_fits(estimate, device_bytes=16 * gib)
    assert "activations 20.0 GiB" in str(info.value)
    assert "reduce the batch size" in str(info.value)
    assert isinstance(info.value, ConfigError)
    heavy = MemoryEstimate(8 * gib, 8 * gib, 16 * gib, gib, 33 * gib)
    with pytest.raises(OutOfMemoryError, match="raise fsdp or tensor"):
        check_fits(heavy, device_bytes=16 * gib)
    check_fits(estimate_memory(CONFIG, (1, 1, 1), 8))  # a tiny model fits this host
