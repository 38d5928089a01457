"""Schedule: warmup end, peak and the exact final value, for long and tiny runs; decay mask."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lab.config import OptimizerConfig
from lab.errors import ConfigError
from lab.optim import decay_mask, make_optimizer, make_schedule, warmup_steps


def _lrs(config: OptimizerConfig, total: int) -> np.ndarray:
    schedule = make_schedule(config, total)
    return np.array([float(schedule(s)) for s in range(total)])


@pytest.mark.parametrize("total", [1, 2, 3, 4, 10, 100, 1000])
def test_schedule_ends_exactly_at_final_fraction(total: int) -> None:
    config = OptimizerConfig(peak_lr=1e-3, warmup_steps=0.1, final_lr_fraction=0.1)
    lrs = _lrs(config, total)
    assert lrs[-1] == pytest.approx(1e-4, rel=1e-6)
    assert lrs.max() <= 1e-3 * (1 + 1e-6)
    warm = warmup_steps(config, total)
    if total >= 2:
        assert lrs[warm] == pytest.approx(1e-3, rel=1e-6)  # peak right after warmup
        assert np.all(np.diff(lrs[warm:]) < 0)  # cosine strictly decays to the end
    if warm:
        np.testing.assert_allclose(lrs[:warm], 1e-3 * np.arange(1, warm + 1) / (warm + 1))


def test_schedule_hand_values() -> None:
    config = OptimizerConfig(peak_lr=2.0, warmup_steps=3, final_lr_fraction=0.1)
    lrs = _lrs(config, 8)
    # warmup 0.5, 1.0, 1.5; cosine from step 3 (peak 2.0) to step 7 (0.2) over 4 intervals.
    cos = [0.2 + 1.8 * 0.5 * (1 + math.cos(math.pi * i / 4)) for i in range(5)]
    np.testing.assert_allclose(lrs, [0.5, 1.0, 1.5, *cos], rtol=1e-6)
    assert _lrs(OptimizerConfig(peak_lr=1.0, warmup_steps=0), 2).tolist() == pytest.approx(
        [1.0, 0.1]
    )
    assert _lrs(OptimizerConfig(peak_lr=1.0, warmup_steps=50), 3).tolist() == pytest.approx(
        [0.5, 1.0, 0.1]
    )


def test_schedule_rejects_bad_total() -> None:
    with pytest.raises(ConfigError, match="total_steps must be a positive int"):
        make_schedule(OptimizerConfig(), 0)


def test_decay_mask_and_update() -> None:
    params = {
        "embed": {"embedding": jnp.ones((4, 2))},
        "block_0": {"attn_norm": {"scale": jnp.ones(2)}, "attn": {"out": jnp.ones((2, 2))}},
        "lm_head": {"kernel": jnp.ones((2, 4))},
    }
    mask = decay_mask(params)
    assert mask == {
        "embed": {"embedding": False},
        "block_0": {"attn_norm": {"scale": False}, "attn": {"out": True}},
        "lm_head": {"kernel": True},
    }
    # With zero gradients only decayed leaves move: p <- p - lr * wd * p.
    optimizer, schedule = make_optimizer(
        OptimizerConfig(peak_lr=0.5, weight_decay=0.1, warmup_steps=0), 3
    )
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = optimizer.update(zeros, optimizer.init(params), params)
    new = optax.apply_updates(params, updates)
    assert float(new["block_0"]["attn"]["out"][0, 0]) == pytest.approx(1 - 0.5 * 0.1)
    assert float(new["embed"]["embedding"][0, 0]) == 1.0
    assert float(new["block_0"]["attn_norm"]["scale"][0]) == 1.0
    assert float(schedule(0)) == pytest.approx(0.5)
