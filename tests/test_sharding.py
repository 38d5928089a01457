"""Sharded equals unsharded on 8 fake CPU devices, and parameters are split as the rules say."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from lab.config import MeshConfig, ModelConfig, OptimizerConfig
from lab.errors import ConfigError
from lab.optim import make_optimizer
from lab.sharding import (
    batch_sharding,
    check_batch_size,
    make_mesh,
    mesh_axes_for,
    param_shardings,
    shard_shape,
    stacked_batch_sharding,
    with_activation_rules,
)
from lab.train_step import init_train_state, loss_fn

MESHES = [(8, 1, 1), (2, 2, 2), (1, 2, 4), (1, 1, 8)]
CONFIG = ModelConfig(n_layers=2, d_model=64, n_heads=8, d_ff=128, ctx=16)
VARIANT = ModelConfig(
    n_layers=1,
    d_model=64,
    n_heads=8,
    d_ff=128,
    ctx=16,
    mlp="swiglu",
    position="learned",
    tied_embeddings=False,
)
EXPECTED_SPECS = {  # path -> spec under LOGICAL_AXIS_RULES
    ("embed", "embedding"): P("tensor", "fsdp"),
    ("block_0", "attn", "qkv"): P("fsdp", None, "tensor"),
    ("block_0", "attn", "out"): P("tensor", "fsdp"),
    ("block_0", "attn_norm", "scale"): P("fsdp"),
    ("block_0", "mlp", "wi"): P("fsdp", "tensor"),
    ("block_0", "mlp", "wo"): P("tensor", "fsdp"),
    ("final_norm", "scale"): P("fsdp"),
}


def _by_path(tree) -> dict:
    return {tuple(k.key for k in p): x for p, x in jax.tree_util.tree_leaves_with_path(tree)}


@functools.cache
def _reference(config: ModelConfig):
    """Single-device params, batch, loss and grads."""
    mesh = make_mesh(MeshConfig(1, 1, 1), jax.devices()[:1])
    optimizer, _ = make_optimizer(OptimizerConfig(), 10)
    state, _ = init_train_state(config, optimizer, mesh, jax.random.key(0))
    params = jax.device_get(state.params)
    batch = np.asarray(jax.random.randint(jax.random.key(1), (8, config.ctx + 1), 0, 256))
    grad_fn = jax.jit(jax.value_and_grad(functools.partial(loss_fn, model=config)))
    loss, grads = grad_fn(params, batch=batch)
    return params, batch, float(loss), jax.device_get(grads)


def _check(config: ModelConfig, mesh_shape: tuple[int, int, int], expected_specs: dict) -> None:
    params, batch, ref_loss, ref_grads = _reference(config)
    mesh = make_mesh(MeshConfig(*mesh_shape))
    shardings = param_shardings(config, mesh)
    params_sharded = jax.device_put(params, shardings)
    batch_sharded = jax.device_put(batch, batch_sharding(mesh))
    grad_fn = jax.jit(
        with_activation_rules(jax.value_and_grad(lambda p, b: loss_fn(p, config, b)), mesh),
        in_shardings=(shardings, batch_sharding(mesh)),
        out_shardings=(None, shardings),
    )
    loss, grads = grad_fn(params_sharded, batch_sharded)
    np.testing.assert_allclose(float(loss), ref_loss, rtol=1e-5)
    sizes = dict(zip(("data", "fsdp", "tensor"), mesh_shape, strict=True))
    specs = dict(zip(_by_path(params), (s.spec for s in jax.tree.leaves(shardings)), strict=True))
    for path, grad in _by_path(grads).items():
        ref = ref_grads
        for key in path:
            ref = ref[key]
        scale = float(np.abs(ref).max())
        np.testing.assert_allclose(
            np.asarray(grad), ref, rtol=1e-5, atol=1e-6 * scale, err_msg=path
        )
        # The gradient is laid out like its parameter, with the shard shape the rules imply.
        assert grad.sharding.spec == specs[path], path
        expected = shard_shape(ref.shape, _logical(config, path), sizes)
        assert grad.addressable_shards[0].data.shape == expected, path
    for path, spec in expected_specs.items():
        assert specs[path] == spec, path


def _logical(config: ModelConfig, path: tuple[str, ...]):
    from lab.counting import param_specs

    return param_specs(config)[path][1]


@pytest.mark.parametrize("mesh_shape", MESHES)
def test_sharded_equals_unsharded(mesh_shape: tuple[int, int, int]) -> None:
    _check(CONFIG, mesh_shape, EXPECTED_SPECS)


def test_sharded_equals_unsharded_swiglu_learned_untied() -> None:
    expected = {
        ("block_0", "mlp", "wi"): P("fsdp", None, "tensor"),
        ("lm_head", "kernel"): P("fsdp", "tensor"),
        ("pos_embed", "embedding"): P(None, "fsdp"),
    }
    _check(VARIANT, (2, 2, 2), expected)


def test_state_is_born_sharded() -> None:
    mesh = make_mesh(MeshConfig(1, 2, 4))
    optimizer, _ = make_optimizer(OptimizerConfig(), 10)
    state, shardings = init_train_state(CONFIG, optimizer, mesh, jax.random.key(0))
    qkv = state.params["block_0"]["attn"]["qkv"]
    assert qkv.sharding.spec == P("fsdp", None, "tensor")
    assert qkv.addressable_shards[0].data.shape == (32, 3, 16)
    adam = state.opt_state[1][0]  # chain(clip, adamw) -> adamw's ScaleByAdamState
    assert adam.mu["block_0"]["attn"]["qkv"].sharding.spec == P("fsdp", None, "tensor")
    assert adam.nu["embed"]["embedding"].addressable_shards[0].data.shape == (64, 32)
    assert state.step.sharding.spec == P()
    # Same values as a single-device init: sharding never changes the model.
    ref_params = _reference(CONFIG)[0]
    np.testing.assert_array_equal(np.asarray(qkv), ref_params["block_0"]["attn"]["qkv"])
    assert shardings.params["embed"]["embedding"].spec == P("tensor", "fsdp")


def test_rules_resolution() -> None:
    assert mesh_axes_for(("batch", "seq", "embed")) == (("data", "fsdp"), (), ())
    assert mesh_axes_for(("vocab", "embed")) == (("tensor",), ("fsdp",))
    assert mesh_axes_for(("batch", "seq", "vocab")) == (("data", "fsdp"), (), ("tensor",))
    assert shard_shape((256, 64), ("vocab", "embed"), {"data": 1, "fsdp": 2, "tensor": 4}) == (
        64,
        32,
    )


def test_mesh_and_batch_sharding() -> None:
    mesh = make_mesh("2,-1,2")
    assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
    assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)
    assert batch_sharding(mesh).spec == P(("data", "fsdp"), None)
    assert stacked_batch_sharding(mesh).spec == P(None, ("data", "fsdp"), None)
    batch = jax.device_put(jnp.zeros((8, 17), jnp.int32), batch_sharding(mesh))
    assert batch.addressable_shards[0].data.shape == (2, 17)
    check_batch_size(mesh, 8)
    with pytest.raises(ConfigError, match="does not split over data x fsdp = 4"):
        check_batch_size(mesh, 6)
    with pytest.raises(ConfigError, match="has 4 devices but 8 are available"):
        make_mesh(MeshConfig(2, 2, 1))
    assert math.prod(make_mesh(MeshConfig(1, 1, 1), jax.devices()[:1]).devices.shape) == 1


def test_an_optimizer_leaf_that_mirrors_no_parameter_raises() -> None:
    """Adafactor's factored moments have shapes no parameter has: the old mirror replicated
    them on every device without a word; now the state's shardings refuse, naming the leaf."""
    import optax

    from lab.train_step import state_shardings

    mesh = make_mesh(MeshConfig(1, 2, 4))
    with pytest.raises(
        ConfigError, match=r"optimizer state leaf \S*v_row\S* of shape .* mirrors no"
    ):
        state_shardings(CONFIG, optax.adafactor(1e-3), mesh)
    # AdamW: every leaf mirrors a parameter or is a scalar (counts, schedule numbers).
    shardings = state_shardings(CONFIG, make_optimizer(OptimizerConfig(), 10)[0], mesh)
    adam = shardings.opt_state[1][0]
    assert adam.count.spec == P()
    assert adam.nu["block_0"]["mlp"]["wo"].spec == P("tensor", "fsdp")


def test_batch_shardings_are_one_spec() -> None:
    mesh = make_mesh(MeshConfig(2, 2, 2))
    assert batch_sharding(mesh, 3) == stacked_batch_sharding(mesh)
    with pytest.raises(ConfigError, match=r"\[B, T\] or \[k, B, T\], got 4 dimensions"):
        batch_sharding(mesh, 4)
    with pytest.raises(ConfigError, match="2 microbatches x data x fsdp = 8 devices"):
        check_batch_size(mesh, 12, microbatches=2)
    check_batch_size(mesh, 16, microbatches=2)
