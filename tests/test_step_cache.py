"""A worker keeps a shape's jitted functions between runs: only when that is exact.

The memo key leaves out the schedule settings (peak LR, warmup, final fraction) because their
numbers live in the optimizer state. The safety net: for each of them, an update built from
one value applied to a state built from another gives bitwise the state's own update.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lab import step_cache
from lab.config import MeshConfig, ModelConfig, OptimizerConfig
from lab.optim import SCHEDULE_FIELDS, make_optimizer, update_signature
from lab.sharding import make_mesh
from lab.train_step import _init_params_fn

MODEL = ModelConfig(n_layers=1, d_model=32, n_heads=2, d_ff=64, vocab_size=32, ctx=8)
BASE = OptimizerConfig(peak_lr=1e-2, warmup_steps=3)
OTHER_VALUES = {
    "peak_lr": 3e-4,
    "warmup_steps": 0.25,
    "final_lr_fraction": 0.5,
    "schedule": "wsd",
    "cooldown_fraction": 0.3,
    "cooldown_shape": "linear",
}


def test_every_setting_outside_the_schedule_is_in_the_key() -> None:
    changed = {"weight_decay": 0.0, "b1": 0.8, "b2": 0.99, "eps": 1e-6, "clip_norm": 0.5}
    names = {f.name for f in dataclasses.fields(OptimizerConfig)}
    assert names == set(changed) | SCHEDULE_FIELDS, "a new optimizer setting needs a case here"
    for name, value in changed.items():
        other = dataclasses.replace(BASE, **{name: value})
        assert update_signature(other) != update_signature(BASE), name
    for name, value in OTHER_VALUES.items():
        other = dataclasses.replace(BASE, **{name: value})
        assert update_signature(other) == update_signature(BASE), name


@pytest.mark.parametrize("parameterization", ["sp", "mup"])
@pytest.mark.parametrize("field", sorted(SCHEDULE_FIELDS))
def test_an_update_built_for_another_schedule_is_bitwise_the_same(field, parameterization):
    model = dataclasses.replace(MODEL, parameterization=parameterization, mup_base_width=16)
    params = _init_params_fn(model)(jax.random.key(0))
    first, _ = make_optimizer(BASE, 20, model)
    other_config = dataclasses.replace(BASE, **{field: OTHER_VALUES[field]})
    other, _ = make_optimizer(other_config, 13, model)
    state = other.init(params)
    for step in range(5):
        grads = jax.tree.map(lambda p, s=step: jnp.cos(p * (s + 1)), params)
        ours, state_ours = jax.jit(other.update)(grads, state, params)
        shared, state_shared = jax.jit(first.update)(grads, state, params)
        for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(shared), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(jax.tree.leaves(state_ours), jax.tree.leaves(state_shared), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        state = state_ours


def test_functions_are_kept_per_shape_and_bounded(monkeypatch) -> None:
    step_cache.clear()
    mesh = make_mesh(MeshConfig(1, 1, 1), jax.devices()[:1])
    opt = make_optimizer(BASE, 10)[0]
    first = step_cache.run_functions(MODEL, BASE, opt, mesh, 4)
    other_budget = dataclasses.replace(BASE, peak_lr=1e-3)
    other_opt = make_optimizer(other_budget, 99)[0]
    assert step_cache.run_functions(MODEL, other_budget, other_opt, mesh, 4) is first
    no_decay = dataclasses.replace(BASE, weight_decay=0.0)
    assert step_cache.run_functions(MODEL, no_decay, opt, mesh, 4) is not first
    assert step_cache.run_functions(MODEL, BASE, opt, mesh, 2) is not first
    wider = dataclasses.replace(MODEL, d_ff=128)
    assert step_cache.run_functions(wider, BASE, opt, mesh, 4) is not first

    monkeypatch.setattr(step_cache, "MAX_SHAPES", 2)
    step_cache.run_functions(dataclasses.replace(MODEL, d_ff=96), BASE, opt, mesh, 4)
    assert step_cache.run_functions(MODEL, BASE, opt, mesh, 4) is not first  # evicted, rebuilt
    step_cache.clear()


def test_init_with_the_schedule_as_data_equals_the_compiled_in_one() -> None:
    """One init executable for every budget: its state is bitwise the optimizer's own."""
    from lab.optim import schedule_arrays
    from lab.train_step import init_train_state, make_init_state, state_shardings

    mesh = make_mesh(MeshConfig(1, 1, 1), jax.devices()[:1])
    shared_opt = make_optimizer(BASE, 10)[0]
    init_state = make_init_state(MODEL, shared_opt, state_shardings(MODEL, shared_opt, mesh))
    for config, steps in ((BASE, 10), (dataclasses.replace(BASE, peak_lr=7e-4), 333)):
        own, _ = init_train_state(MODEL, make_optimizer(config, steps)[0], mesh, jax.random.key(3))
        shared = init_state(jax.random.key(3), schedule_arrays(config, steps))
        assert jax.tree.structure(own) == jax.tree.structure(shared)
        for a, b in zip(jax.tree.leaves(own), jax.tree.leaves(shared), strict=True):
            assert a.sharding == b.sharding
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
