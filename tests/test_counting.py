"""FLOPs per token: hand counts of every convention, and the executed count against XLA's."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from lab import counting
from lab.config import MeshConfig, ModelConfig, OptimizerConfig
from lab.errors import ConfigError
from lab.optim import make_optimizer
from lab.sharding import batch_sharding, make_mesh
from lab.train_step import init_train_state, make_train_step


def test_flops_by_hand() -> None:
    # L=2, d=64, f=256, V=256, T=16: per layer fwd QKV 2*64*192, attention 2 * 2*T_eff*64,
    # out 2*64*64, MLP 2*2*64*256; unembedding 2*64*256; training = 3x forward.
    config = ModelConfig(n_layers=2, d_model=64, n_heads=4, d_ff=256, ctx=16)

    def by_hand(keys: float) -> float:
        layer = 2 * 64 * 192 + 2 * 2 * keys * 64 + 2 * 64 * 64 + 2 * 2 * 64 * 256
        return 3 * (2 * layer + 2 * 64 * 256)

    assert config.flops_per_token("full") == pytest.approx(by_hand(16))
    assert config.flops_per_token("causal") == pytest.approx(by_hand(8.5))  # (T+1)/2 keys
    assert config.flops_per_token() == config.flops_per_token("causal")
    assert config.flops_per_token("6N") == 6 * config.num_params()
    assert config.flops_per_token("6N_nonemb") == 6 * config.num_nonembedding_params()
    swiglu = ModelConfig(n_layers=2, d_model=64, n_heads=4, d_ff=256, ctx=16, mlp="swiglu")
    assert swiglu.flops_per_token("full") - config.flops_per_token("full") == pytest.approx(
        3 * 2 * 2 * 64 * 256
    )
    with pytest.raises(ConfigError, match="unknown FLOPs convention 'kaplan'"):
        config.flops_per_token("kaplan")


def test_6n_close_to_detailed_for_large_models() -> None:
    # Kaplan: C ~ 6N once d_model >> ctx/12; the detailed count adds attention and unembedding.
    big = ModelConfig(n_layers=24, d_model=2048, n_heads=16, d_ff=8192, ctx=128)
    assert big.flops_per_token("causal") / big.flops_per_token("6N") == pytest.approx(1, abs=0.02)
    budget = 1e18
    assert counting.tokens_for_budget(big, budget, "6N") == budget / (6 * big.num_params())


@pytest.mark.parametrize("mlp", ["gelu", "swiglu"])
def test_full_flops_match_xla_cost_analysis(mlp: str) -> None:
    config = ModelConfig(n_layers=1, d_model=256, n_heads=4, d_ff=1024, ctx=128, mlp=mlp)
    batch_size = 4
    mesh = make_mesh(MeshConfig(1, 1, 1), jax.devices()[:1])
    optimizer, _ = make_optimizer(OptimizerConfig(), 10)
    state, shardings = init_train_state(config, optimizer, mesh, jax.random.key(0))
    step = make_train_step(config, optimizer, mesh, shardings)
    batch = jax.ShapeDtypeStruct(
        (batch_size, config.ctx + 1), jnp.int32, sharding=batch_sharding(mesh)
    )
    xla_flops = step.lower(state, batch).compile().cost_analysis()["flops"]
    ours = config.flops_per_token("full") * batch_size * config.ctx
    assert xla_flops == pytest.approx(ours, rel=0.05)
