"""muP: the switch leaves SP alone, and the properties that define muP hold (coordinate check).

Coordinate check (Yang et al. 2022, Tensor Programs V, Fig. 5 and App. D.1): train a few Adam
steps at one LR over widths 32..256; under muP the size of the activations at init and of their
change after the first updates does not grow with width; under SP the updates grow ~ width.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lab import mup
from lab.config import ModelConfig, OptimizerConfig
from lab.errors import ConfigError
from lab.model import Transformer
from lab.optim import make_optimizer, mup_labels
from lab.train_step import loss_fn

WIDTHS = (32, 64, 128, 256)


def _config(width: int, parameterization: str, **kw) -> ModelConfig:
    return ModelConfig(
        n_layers=2,
        d_model=width,
        n_heads=width // 16,
        d_ff=4 * width,
        vocab_size=64,
        ctx=16,
        parameterization=parameterization,
        mup_base_width=32,
        **kw,
    )


def _init(config: ModelConfig, seed: int = 0):
    tokens = jnp.zeros((1, config.ctx), jnp.int32)
    return nn.meta.unbox(Transformer(config).init(jax.random.key(seed), tokens)["params"])


def _batch(seed: int = 1) -> jax.Array:
    return jax.random.randint(jax.random.key(seed), (8, 17), 0, 64)


def _activations(config: ModelConfig, params, tokens) -> dict[str, float]:
    """RMS of the residual stream after the last block, and of the logits."""
    logits, state = Transformer(config).apply(
        {"params": params}, tokens, capture_intermediates=True
    )
    last, _ = state["intermediates"][f"block_{config.n_layers - 1}"]["__call__"][0]  # (x, cache)
    return {"hidden": last, "logits": logits}


def _rms(x: jax.Array) -> float:
    return float(jnp.sqrt(jnp.mean(jnp.square(x))))


def _coordinate_check(parameterization: str, steps: int = 3, lr: float = 1e-2):
    """Per width: init RMS of hidden/logits and RMS of their change after `steps` updates."""
    out = {}
    batch = _batch()
    opt = OptimizerConfig(peak_lr=lr, warmup_steps=0, final_lr_fraction=1.0, weight_decay=0.0)
    for width in WIDTHS:
        config = _config(width, parameterization)
        params = _init(config)
        optimizer, _ = make_optimizer(opt, steps, config)
        state = optimizer.init(params)

        @jax.jit
        def step(params, state, config=config, optimizer=optimizer):
            grads = jax.grad(loss_fn)(params, config, batch)
            updates, state = optimizer.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        activations = jax.jit(lambda p, config=config: _activations(config, p, batch[:, :-1]))
        before = activations(params)
        for _ in range(steps):
            params, state = step(params, state)
        after = activations(params)
        out[width] = {
            "init_hidden": _rms(before["hidden"]),
            "init_logits": _rms(before["logits"]),
            "delta_hidden": _rms(after["hidden"] - before["hidden"]),
            "delta_logits": _rms(after["logits"] - before["logits"]),
        }
    return out


def _slope(values: dict[int, float]) -> float:
    """Log-log slope of a quantity against width."""
    widths = np.array(sorted(values), dtype=float)
    ys = np.array([values[int(w)] for w in widths])
    return float(np.polyfit(np.log(widths), np.log(ys), 1)[0])


def test_default_is_sp_and_hashes_like_before() -> None:
    config = ModelConfig(n_layers=1, d_model=32, n_heads=2, d_ff=128)
    assert config.parameterization == "sp"
    assert "parameterization" not in config.to_dict()  # old run ids / hashes unchanged
    muped = ModelConfig.from_dict({**config.to_dict(), "parameterization": "mup"})
    assert muped.to_dict()["parameterization"] == "mup"
    assert ModelConfig.from_dict(muped.to_dict()) == muped


def test_bad_parameterization_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown parameterization 'mu'"):
        _config(32, "mu")
    with pytest.raises(ConfigError, match="mup_base_width"):
        ModelConfig(n_layers=1, d_model=32, n_heads=2, d_ff=128, mup_base_width=0)


def test_mup_equals_sp_init_at_base_width_except_attention() -> None:
    sp, mp = _init(_config(32, "sp")), _init(_config(32, "mup"))
    for a, b in zip(jax.tree.leaves(sp), jax.tree.leaves(mp), strict=True):
        np.testing.assert_array_equal(a, b)
    wide = _init(_config(128, "mup"))
    # embeddings keep the base width's std (1/sqrt(32)), hidden matrices scale 1/sqrt(fan_in)
    assert np.std(wide["embed"]["embedding"]) == pytest.approx(32**-0.5, rel=0.05)
    assert np.std(wide["block_0"]["mlp"]["wi"]) == pytest.approx(128**-0.5, rel=0.05)


def test_mup_labels_and_multipliers_by_path() -> None:
    config = _config(128, "mup", tied_embeddings=False, position="learned")
    factors = mup.lr_multipliers(config)
    assert factors[("block_0", "attn", "qkv")] == pytest.approx(0.25)
    assert factors[("block_1", "mlp", "wo")] == pytest.approx(0.25)
    for path in [("embed", "embedding"), ("pos_embed", "embedding"), ("lm_head", "kernel")]:
        assert factors[path] == 1.0
    assert factors[("final_norm", "scale")] == 1.0
    labels = mup_labels(config)(_init(config))
    assert labels["block_0"]["attn"]["out"] == "hidden"
    assert labels["lm_head"]["kernel"] == "vector"
    assert mup.readout_multiplier(config) == 0.25
    assert mup.attention_scale(config) == 1.0 / 16


def test_mup_optimizer_scales_hidden_updates_by_base_over_width() -> None:
    """One Adam step: |update| = lr for vectors, lr * d0/d for hidden matrices (no decay)."""
    config = _config(128, "mup")
    params = _init(config)
    grads = jax.tree.map(jnp.ones_like, params)
    opt = OptimizerConfig(peak_lr=1e-2, warmup_steps=0, weight_decay=0.0, clip_norm=0.0)
    optimizer, _ = make_optimizer(opt, 10, config)
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    assert float(jnp.max(jnp.abs(updates["embed"]["embedding"]))) == pytest.approx(1e-2, rel=1e-3)
    hidden = float(jnp.max(jnp.abs(updates["block_0"]["attn"]["qkv"])))
    assert hidden == pytest.approx(1e-2 * 32 / 128, rel=1e-3)
    sp_optimizer, _ = make_optimizer(opt, 10, _config(128, "sp"))
    sp_updates, _ = sp_optimizer.update(grads, sp_optimizer.init(params), params)
    assert float(jnp.max(jnp.abs(sp_updates["block_0"]["attn"]["qkv"]))) == pytest.approx(1e-2)


def test_mup_with_scanned_blocks_labels_and_updates_like_the_loop() -> None:
    """Stacked parameters ("blocks/...", a leading layers axis) keep their muP class and LR."""
    from lab.model import stack_blocks, unstack_blocks

    loop = _config(128, "mup")
    scan = dataclasses.replace(loop, scan_layers=True)
    params = _init(loop)
    stacked = stack_blocks(params, loop.n_layers)
    labels = mup_labels(scan)(stacked)
    assert labels["blocks"]["attn"]["qkv"] == "hidden"
    assert labels["blocks"]["mlp_norm"]["scale"] == "vector"
    assert mup.lr_multipliers(scan)[("blocks", "mlp", "wo")] == pytest.approx(0.25)
    grads = jax.tree.map(jnp.cos, params)
    opt = OptimizerConfig(peak_lr=1e-2, warmup_steps=0, weight_decay=0.1)
    want_opt, _ = make_optimizer(opt, 10, loop)
    want = want_opt.update(grads, want_opt.init(params), params)[0]
    scan_opt, _ = make_optimizer(opt, 10, scan)
    got = scan_opt.update(stack_blocks(grads, 2), scan_opt.init(stacked), stacked)[0]
    got = unstack_blocks(got, loop.n_layers)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-9)


def test_coordinate_check_mup_flat_sp_grows() -> None:
    """Measured (widths 32..256, 3 steps at lr 1e-2): muP hidden update RMS 0.98, 1.03, 0.97,
    0.95 (slope -0.02); SP 0.96, 1.58, 2.70, 6.26 (slope 0.89). Logit updates: muP 1.15 -> 0.70
    (the x.dE term is width-independent, the dx.E term fades as 1/sqrt(d)), SP 1.14 -> 2.29."""
    mp, sp = _coordinate_check("mup"), _coordinate_check("sp")
    for key in ("init_hidden", "delta_hidden"):
        assert abs(_slope({w: mp[w][key] for w in WIDTHS})) < 0.1, (key, mp)
    assert -0.4 < _slope({w: mp[w]["delta_logits"] for w in WIDTHS}) <= 0.0, mp
    assert _slope({w: mp[w]["init_logits"] for w in WIDTHS}) < 0.0  # logits -> 0 at init (muP)
    assert abs(_slope({w: sp[w]["init_hidden"] for w in WIDTHS})) < 0.1, sp
    assert _slope({w: sp[w]["delta_hidden"] for w in WIDTHS}) > 0.6, sp
    assert _slope({w: sp[w]["delta_logits"] for w in WIDTHS}) > 0.2, sp
    assert sp[256]["delta_hidden"] > 4 * mp[256]["delta_hidden"]


def _markov_batches(steps: int, batch: int = 16, ctx: int = 32, vocab: int = 64, seed: int = 0):
    """A random sparse Markov chain (4 successors per token): a small learnable task."""
    rng = np.random.default_rng(seed)
    successors = rng.integers(0, vocab, size=(vocab, 4))
    tokens = np.empty((steps, batch, ctx + 1), np.int32)
    tokens[:, :, 0] = rng.integers(0, vocab, size=(steps, batch))
    for t in range(ctx):
        pick = rng.integers(0, 4, size=(steps, batch))
        tokens[:, :, t + 1] = successors[tokens[:, :, t], pick]
    return jnp.asarray(tokens)


def _final_losses(width: int, parameterization: str, lrs: np.ndarray, steps: int) -> np.ndarray:
    """Final train loss per LR; all LRs trained at once (vmap): AdamW's update is linear in
    the peak LR, so a unit-LR optimizer's update times lr is the update at lr."""
    config = dataclasses.replace(_config(width, parameterization), ctx=32)
    batches = _markov_batches(steps)
    opt = OptimizerConfig(peak_lr=1.0, warmup_steps=0.1, weight_decay=0.0)
    optimizer, _ = make_optimizer(opt, steps, config)
    params = _init(config)

    def train(lr):
        def step(carry, batch):
            p, s = carry
            loss, grads = jax.value_and_grad(loss_fn)(p, config, batch)
            updates, s = optimizer.update(grads, s, p)
            return (optax.apply_updates(p, jax.tree.map(lambda u: lr * u, updates)), s), loss

        _, losses = jax.lax.scan(step, (params, optimizer.init(params)), batches)
        return jnp.mean(losses[-10:])

    return np.asarray(jax.jit(jax.vmap(train))(jnp.asarray(lrs)))


@pytest.mark.slow
def test_lr_transfers_across_4x_width_under_mup_not_sp() -> None:
    lrs = 10.0 ** np.arange(-3.5, -0.49, 0.25)
    best = {}
    for p in ("mup", "sp"):
        for width in (32, 128):
            losses = _final_losses(width, p, lrs, steps=150)
            best[p, width] = lrs[int(np.argmin(losses))]
            print(p, width, dict(zip(np.round(lrs, 5), np.round(losses, 3), strict=True)))
    print(best)
    assert 0.5 <= best["mup", 128] / best["mup", 32] <= 2.0
    assert not 0.5 <= best["sp", 128] / best["sp", 32] <= 2.0
