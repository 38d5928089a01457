"""scan_layers, remat and microbatches change memory and compile time, not the function.

Each is compared with the plain model on the same weights (scan: the loop's weights stacked),
and the memory estimate of each remat policy with XLA's own buffer count of the compiled step.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lab import sharding
from lab.config import MeshConfig, ModelConfig, OptimizerConfig
from lab.errors import ConfigError
from lab.memory import estimate_memory
from lab.model import Transformer, stack_blocks, unstack_blocks
from lab.optim import make_optimizer
from lab.train_step import TrainState, loss_and_grads, loss_fn, make_train_step, state_shardings

CONFIG = ModelConfig(n_layers=3, d_model=32, n_heads=4, d_ff=64, ctx=16, vocab_size=64)
VARIANT = {"mlp": "swiglu", "position": "learned", "tied_embeddings": False}


def _params(config: ModelConfig, seed: int = 0):
    tokens = jnp.zeros((1, config.ctx), jnp.int32)
    return nn.meta.unbox(Transformer(config).init(jax.random.key(seed), tokens)["params"])


def _batch(rows: int, config: ModelConfig = CONFIG, seed: int = 1) -> np.ndarray:
    shape = (rows, config.ctx + 1)
    return np.asarray(jax.random.randint(jax.random.key(seed), shape, 0, config.vocab_size))


@functools.partial(jax.jit, static_argnums=1)
def _loss_and_grads(params, config: ModelConfig, batch):
    return jax.value_and_grad(loss_fn)(params, config, batch)


def _assert_trees_close(got, want, rtol: float) -> None:
    """Leaf by leaf at `rtol`, and absolutely at 1e-6 of the leaf's largest entry (summation
    order moves near-zero entries by float epsilon of the large ones), as test_sharding."""
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        scale = float(np.abs(b).max())
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=1e-6 * scale)


@pytest.mark.parametrize("variant", [{}, VARIANT], ids=["rope-gelu-tied", "learned-swiglu"])
def test_scan_equals_the_python_loop(variant: dict) -> None:
    loop = dataclasses.replace(CONFIG, **variant)
    scan = dataclasses.replace(loop, scan_layers=True)
    params = _params(loop)
    stacked = stack_blocks(params, loop.n_layers)
    assert stacked["blocks"]["attn"]["qkv"].shape == (3, 32, 3, 32)
    # The converted weights have exactly the scanned model's structure and shapes.
    abstract = nn.meta.unbox(sharding.abstract_params(scan))
    assert jax.tree.map(lambda x: x.shape, stacked) == jax.tree.map(lambda x: x.shape, abstract)
    batch = _batch(4, loop)
    loss, grads = _loss_and_grads(params, loop, batch)
    scan_loss, scan_grads = _loss_and_grads(stacked, scan, batch)
    np.testing.assert_allclose(float(scan_loss), float(loss), rtol=1e-5)
    _assert_trees_close(unstack_blocks(scan_grads, loop.n_layers), grads, rtol=1e-5)
    assert float(jnp.abs(grads["block_0"]["attn"]["qkv"]).max()) > 0  # not a vacuous check
    # The optimizer treats stacked leaves like their layers (weight decay on kernels only:
    # a stacked norm scale is 2-D but still a vector per layer).
    optimizer, _ = make_optimizer(OptimizerConfig(weight_decay=0.5), 10, loop)
    want = optimizer.update(grads, optimizer.init(params), params)[0]
    got = optimizer.update(stack_blocks(grads, 3), optimizer.init(stacked), stacked)[0]
    _assert_trees_close(unstack_blocks(got, loop.n_layers), want, rtol=1e-6)


@pytest.mark.parametrize("remat", ["full", "save-dots"])
@pytest.mark.parametrize("scan_layers", [False, True])
def test_remat_equals_no_remat(remat: str, scan_layers: bool) -> None:
    plain = dataclasses.replace(CONFIG, scan_layers=scan_layers)
    params = _params(plain)
    batch = _batch(4)
    loss, grads = _loss_and_grads(params, plain, batch)
    remat_loss, remat_grads = _loss_and_grads(
        params, dataclasses.replace(plain, remat=remat), batch
    )
    np.testing.assert_allclose(float(remat_loss), float(loss), rtol=1e-6)
    _assert_trees_close(remat_grads, grads, rtol=1e-6)


def test_remat_saves_what_its_policy_says() -> None:
    """The policy really is applied: XLA's temporaries shrink none > save-dots > full."""
    temps = {
        remat: _compiled_step(dataclasses.replace(BIG, remat=remat)).temp_size_in_bytes
        for remat in ("none", "save-dots", "full")
    }
    assert temps["none"] > 1.5 * temps["save-dots"] > 1.5 * temps["full"], temps


def test_k_microbatches_equal_one_batch_of_k_times_the_size() -> None:
    config = dataclasses.replace(CONFIG, microbatches=4)
    params, batch = _params(CONFIG), _batch(16)
    loss, grads = jax.jit(loss_and_grads, static_argnums=1)(params, config, batch)
    want_loss, want_grads = _loss_and_grads(params, CONFIG, batch)
    np.testing.assert_allclose(float(loss), float(want_loss), rtol=1e-5)
    _assert_trees_close(grads, want_grads, rtol=1e-5)
    with pytest.raises(ConfigError, match="does not split into microbatches = 4"):
        loss_and_grads(params, config, batch[:6])


def test_a_microbatched_train_step_on_a_mesh_equals_the_whole_batch_step() -> None:
    mesh = sharding.make_mesh(MeshConfig(2, 2, 2))
    optimizer, _ = make_optimizer(OptimizerConfig(peak_lr=1e-2, warmup_steps=0), 10)
    batch = jax.device_put(_batch(16), sharding.batch_sharding(mesh))
    results = []
    for k in (1, 2):
        config = dataclasses.replace(CONFIG, microbatches=k, scan_layers=True)
        shardings = state_shardings(config, optimizer, mesh)
        params = jax.device_put(stack_blocks(_params(CONFIG), 3), shardings.params)
        state = TrainState(jnp.zeros((), jnp.int32), params, optimizer.init(params))
        state = jax.device_put(state, shardings)
        step = make_train_step(config, optimizer, mesh, shardings)
        results.append(step(state, batch))
    (one, one_metrics), (two, two_metrics) = results
    for name in ("loss", "grad_norm"):
        np.testing.assert_allclose(two_metrics[name], one_metrics[name], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(two.params), jax.tree.leaves(one.params), strict=True):
        assert a.sharding == b.sharding
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-3)  # see
        # test_train_step: Adam's first step moves tiny-gradient params by up to ~lr.
    with pytest.raises(ConfigError, match="2 microbatches x data x fsdp = 8"):
        step(state, jax.device_put(_batch(12), sharding.batch_sharding(mesh)))


def _lowered_size(config: ModelConfig) -> int:
    abstract = nn.meta.unbox(sharding.abstract_params(config))
    batch = jax.ShapeDtypeStruct((2, config.ctx + 1), jnp.int32)
    return len(_loss_and_grads.lower(abstract, config, batch).as_text())


def test_scanned_compile_size_does_not_grow_with_depth() -> None:
    """The lowered program of 8 scanned layers is as big as that of 2; the loop's grows ~4x."""
    shallow, deep = (dataclasses.replace(CONFIG, n_layers=n) for n in (2, 8))
    scan = [_lowered_size(dataclasses.replace(c, scan_layers=True)) for c in (shallow, deep)]
    loop = [_lowered_size(c) for c in (shallow, deep)]
    assert scan[1] == pytest.approx(scan[0], rel=0.02), scan
    assert loop[1] > 2.5 * loop[0], loop


# Activations dominate (ctx 128, batch 16): what the remat policies act on.
BIG = ModelConfig(
    n_layers=4, d_model=64, n_heads=4, d_ff=256, ctx=128, vocab_size=256, scan_layers=True
)
BIG_BATCH = 16


def _compiled_step(config: ModelConfig):
    mesh = sharding.make_mesh(MeshConfig(1, 1, 1), jax.devices()[:1])
    optimizer, _ = make_optimizer(OptimizerConfig(), 10, config)
    shardings = state_shardings(config, optimizer, mesh)
    params = sharding.sharded_abstract_params(config, mesh)
    state = jax.eval_shape(
        lambda p: TrainState(jnp.zeros((), jnp.int32), p, optimizer.init(p)), params
    )
    state = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), state, shardings
    )
    batch = jax.ShapeDtypeStruct(
        (BIG_BATCH, config.ctx + 1), jnp.int32, sharding=sharding.batch_sharding(mesh)
    )
    step = make_train_step(config, optimizer, mesh, shardings)
    return step.lower(state, batch).compile().memory_analysis()


@pytest.mark.parametrize("microbatches", [1, 2])
@pytest.mark.parametrize("remat", ["none", "save-dots", "full"])
def test_memory_estimate_of_each_remat_policy_against_xla(remat: str, microbatches: int) -> None:
    """Estimated activations + gradients vs XLA's temporaries (CPU, scanned layers).

    Measured here (estimate / XLA): none 0.63, save-dots 1.09, full 0.92, the same with 2
    microbatches. The band [0.55, 1.3] holds those with a margin and still fails for a policy
    or a microbatch count the estimate ignores (counting "none" for "full" gives 2.7x, not
    splitting the batch 2x). XLA's "none" is higher than the arithmetic: the scan's stacked
    residuals and backward scratch it does not model. (On CPU remat only takes effect with
    scan_layers: without the loop boundary XLA schedules the recomputation early.)
    """
    config = dataclasses.replace(BIG, remat=remat, microbatches=microbatches)
    analysis = _compiled_step(config)
    estimate = estimate_memory(config, (1, 1, 1), BIG_BATCH)
    ratio = (estimate.activations + estimate.gradients) / analysis.temp_size_in_bytes
    assert 0.55 <= ratio <= 1.3, ratio
    # Arguments are the state and batch: exactly weights + Adam moments (+ scalars, tokens).
    state_bytes = estimate.weights + estimate.optimizer
    assert 0 <= analysis.argument_size_in_bytes - state_bytes <= 4096 + 4 * BIG_BATCH * 129
