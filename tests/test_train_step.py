"""Train and eval steps: scanned steps equal single steps, evals sum exactly, the model learns."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lab.config import MeshConfig, ModelConfig, OptimizerConfig
from lab.errors import ConfigError
from lab.optim import make_optimizer
from lab.sharding import batch_sharding, make_mesh, stacked_batch_sharding
from lab.train_step import init_train_state, loss_fn, make_eval_step, make_train_step

CONFIG = ModelConfig(n_layers=1, d_model=32, n_heads=4, d_ff=64, ctx=16, vocab_size=32)


@pytest.fixture(scope="module")
def setup():
    """Mesh, initial state and compiled steps, shared: compiling dominates these tests."""
    mesh = make_mesh(MeshConfig(2, 2, 2))
    optimizer, _ = make_optimizer(OptimizerConfig(peak_lr=1e-2, warmup_steps=0), 300)
    state, shardings = init_train_state(CONFIG, optimizer, mesh, jax.random.key(0))
    single = make_train_step(CONFIG, optimizer, mesh, shardings)
    scanned = make_train_step(CONFIG, optimizer, mesh, shardings, steps_per_call=3)
    return mesh, state, shardings, single, scanned


def _fresh(setup):
    """A copy of the initial state (steps donate theirs)."""
    return jax.tree.map(jnp.copy, setup[1])


def _batches(k: int, seed: int = 1) -> np.ndarray:
    return np.asarray(jax.random.randint(jax.random.key(seed), (k, 8, CONFIG.ctx + 1), 0, 32))


def test_scanned_steps_equal_single_steps(setup) -> None:
    mesh, _, _, single, scanned = setup
    batches = _batches(3)
    state = _fresh(setup)
    losses = []
    for batch in batches:
        state, metrics = single(state, jax.device_put(batch, batch_sharding(mesh)))
        assert metrics["loss"].shape == (1,) and metrics["grad_norm"].shape == (1,)
        losses.append(float(metrics["loss"][0]))
    stack = jax.device_put(batches, stacked_batch_sharding(mesh))
    state3, metrics3 = scanned(_fresh(setup), stack, np.int32(3))
    assert metrics3["loss"].shape == (3,) and metrics3["loss"].dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(metrics3["loss"]), losses, rtol=1e-5)
    assert int(state.step) == int(state3.step) == 3
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(state3.params), strict=True):
        # Adam divides by sqrt(nu): last-bit differences of tiny gradients move params by up to
        # ~lr, so compare at a tenth of the learning rate (1e-2), not at float epsilon.
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-3)
    # First loss is the unsharded reference loss of the initial params.
    ref = loss_fn(jax.device_get(_fresh(setup).params), CONFIG, batches[0])
    assert losses[0] == pytest.approx(float(ref), rel=1e-5)
    # Unit-variance logits at init: E[cross-entropy] ~ log V + 1/2.
    assert losses[0] == pytest.approx(np.log(32) + 0.5, abs=0.3)


def test_a_short_chunk_trains_only_its_steps(setup) -> None:
    """num_steps=2 of a 3-step loop equals 2 single steps; the third batch is never used."""
    mesh, _, _, single, scanned = setup
    batches = _batches(3)
    state = _fresh(setup)
    for batch in batches[:2]:
        state, _ = single(state, jax.device_put(batch, batch_sharding(mesh)))
    padded = batches.copy()
    padded[2] = 0  # what the run loop puts in the unused slot
    stack = jax.device_put(padded, stacked_batch_sharding(mesh))
    state2, metrics2 = scanned(_fresh(setup), stack, np.int32(2))
    assert int(state2.step) == 2
    assert np.asarray(metrics2["loss"])[2] == 0.0 and np.asarray(metrics2["loss"])[1] > 0
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(state2.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-3)


def test_metrics_report_the_scheduled_lr_of_each_update() -> None:
    """The step reads its lr from the optimizer state: it matches the host-side schedule."""
    mesh = make_mesh(MeshConfig(1, 1, 1), jax.devices()[:1])
    optimizer, schedule = make_optimizer(OptimizerConfig(peak_lr=1e-2, warmup_steps=2), 7)
    state, shardings = init_train_state(CONFIG, optimizer, mesh, jax.random.key(0))
    step = make_train_step(CONFIG, optimizer, mesh, shardings, steps_per_call=4)
    lrs = []
    for num_steps in (4, 3):
        stack = jax.device_put(_batches(4), stacked_batch_sharding(mesh))
        state, metrics = step(state, stack, np.int32(num_steps))
        lrs.extend(np.asarray(metrics["lr"])[:num_steps].tolist())
    expected = [float(schedule(s)) for s in range(7)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-6)
    assert lrs[2] == pytest.approx(1e-2) and lrs[-1] == pytest.approx(1e-3)


def test_state_is_donated(setup) -> None:
    mesh, _, _, step, _ = setup
    state = _fresh(setup)
    leaf = state.params["block_0"]["attn"]["qkv"]
    step(state, jax.device_put(_batches(1)[0], batch_sharding(mesh)))
    assert leaf.is_deleted()


def test_eval_step_sums_exactly(setup) -> None:
    mesh, state, shardings, _, _ = setup
    batch = _batches(1, seed=5)[0]
    evaluate = make_eval_step(CONFIG, mesh, shardings)
    total, count = evaluate(state.params, jax.device_put(batch, batch_sharding(mesh)))
    assert count.dtype == jnp.int32 and int(count) == 8 * CONFIG.ctx
    ref = loss_fn(jax.device_get(state.params), CONFIG, batch)
    assert float(total) / int(count) == pytest.approx(float(ref), rel=1e-5)


def test_stacked_eval_sums_a_whole_eval_set_in_one_call(setup) -> None:
    mesh, state, shardings, _, _ = setup
    batches = _batches(3, seed=6)
    evaluate = make_eval_step(CONFIG, mesh, shardings, stacked=True)
    total, count = evaluate(state.params, jax.device_put(batches, stacked_batch_sharding(mesh)))
    assert int(count) == 3 * 8 * CONFIG.ctx
    params = jax.device_get(state.params)
    ref = np.mean([float(loss_fn(params, CONFIG, batch)) for batch in batches])
    assert float(total) / int(count) == pytest.approx(ref, rel=1e-5)


def test_learns_a_repeating_pattern(setup) -> None:
    mesh, _, _, _, step = setup
    # 11 distinct tokens repeating: each next token is fully determined by the current one.
    pattern = np.array([3, 1, 4, 15, 9, 2, 6, 5, 30, 8, 7], np.int32)
    offsets = np.arange(8)[:, None] + np.arange(CONFIG.ctx + 1)[None, :]
    batch = pattern[offsets % len(pattern)]
    stack = jax.device_put(np.stack([batch] * 3), stacked_batch_sharding(mesh))
    state = _fresh(setup)
    losses = []
    for _ in range(100):  # 300 steps
        state, metrics = step(state, stack, np.int32(3))
        losses.extend(np.asarray(metrics["loss"]).tolist())
    assert losses[0] > 3.0
    assert losses[-1] < 0.02, losses[::30]


def test_steps_per_call_validation(setup) -> None:
    mesh, _, shardings, _, _ = setup
    optimizer, _ = make_optimizer(OptimizerConfig(), 10)
    with pytest.raises(ConfigError, match="steps_per_call must be >= 1"):
        make_train_step(CONFIG, optimizer, mesh, shardings, steps_per_call=0)
