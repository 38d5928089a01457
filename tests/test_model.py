"""The model: exact parameter inventory, causality, dtypes, logical names."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lab import counting
from lab.config import ModelConfig
from lab.model import Transformer

VARIANTS = [
    {},
    {"position": "learned"},
    {"mlp": "swiglu"},
    {"tied_embeddings": False},
    {"position": "learned", "mlp": "swiglu", "tied_embeddings": False, "vocab_size": 97},
    {"scan_layers": True},  # stacked paths blocks/... with a leading layers axis
    {"scan_layers": True, "mlp": "swiglu", "tied_embeddings": False, "position": "learned"},
]


def _leaves(tree, is_leaf=None) -> dict[tuple[str, ...], object]:
    flat = jax.tree_util.tree_leaves_with_path(tree, is_leaf=is_leaf)
    return {tuple(k.key for k in path): leaf for path, leaf in flat}


@pytest.mark.parametrize("variant", VARIANTS)
def test_param_inventory_matches_pytree_exactly(variant: dict) -> None:
    config = ModelConfig(n_layers=3, d_model=48, n_heads=6, d_ff=136, ctx=24, **variant)
    tokens = jax.ShapeDtypeStruct((2, config.ctx), jnp.int32)
    boxed = jax.eval_shape(Transformer(config).init, jax.random.key(0), tokens)["params"]
    shapes = _leaves(nn.meta.unbox(boxed))
    names = _leaves(
        nn.get_partition_spec(boxed), is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec)
    )
    specs = counting.param_specs(config)
    assert set(shapes) == set(specs)
    for path, (shape, logical) in specs.items():
        assert shapes[path].shape == shape and shapes[path].dtype == jnp.float32, path
        assert tuple(names[path]) == logical, path
    total = sum(math.prod(leaf.shape) for leaf in shapes.values())
    assert config.num_params() == total
    embedding = sum(
        math.prod(leaf.shape)
        for path, leaf in shapes.items()
        if path[0] in ("embed", "pos_embed", "lm_head")
    )
    assert config.num_nonembedding_params() == total - embedding


def test_param_count_by_hand() -> None:
    # d=64, L=2, f=256, V=256, tied rope: 2 * (4*64^2 + 2*64*256 + 2*64) + 64 + 256*64
    config = ModelConfig(n_layers=2, d_model=64, n_heads=4, d_ff=256)
    assert config.num_params() == 2 * (4 * 64**2 + 2 * 64 * 256 + 2 * 64) + 64 + 256 * 64
    assert config.num_nonembedding_params() == 2 * (4 * 64**2 + 2 * 64 * 256 + 2 * 64) + 64
    untied = ModelConfig(n_layers=2, d_model=64, n_heads=4, d_ff=256, tied_embeddings=False)
    assert untied.num_params() == config.num_params() + 256 * 64
    assert untied.num_nonembedding_params() == config.num_nonembedding_params()


@pytest.fixture(scope="module")
def small_model():
    config = ModelConfig(n_layers=2, d_model=32, n_heads=4, d_ff=64, ctx=16, position="rope")
    tokens = jnp.zeros((2, config.ctx), jnp.int32)
    params = nn.meta.unbox(jax.jit(Transformer(config).init)(jax.random.key(0), tokens)["params"])
    return config, params


@pytest.mark.parametrize("position", ["rope", "learned"])
def test_causality(position: str) -> None:
    config = ModelConfig(n_layers=2, d_model=32, n_heads=4, d_ff=64, ctx=16, position=position)
    model = Transformer(config)
    tokens = jax.random.randint(jax.random.key(1), (2, config.ctx), 0, config.vocab_size)
    params = nn.meta.unbox(jax.jit(model.init)(jax.random.key(0), tokens)["params"])
    apply = jax.jit(lambda p, x: model.apply({"params": p}, x))
    base = np.asarray(apply(params, tokens))
    for t in (0, 5, 15):
        changed = tokens.at[:, t].set((tokens[:, t] + 1) % config.vocab_size)
        out = np.asarray(apply(params, changed))
        np.testing.assert_array_equal(out[:, :t], base[:, :t])
        assert np.abs(out[:, t:] - base[:, t:]).max() > 1e-4  # and the future does see it


def test_logits_fp32_and_bf16_compute_close(small_model) -> None:
    config, params = small_model
    tokens = jax.random.randint(jax.random.key(2), (2, config.ctx), 0, config.vocab_size)
    logits32 = jax.jit(Transformer(config).apply)({"params": params}, tokens)
    bf16 = ModelConfig(**{**config.to_dict(), "compute_dtype": "bfloat16"})
    logits16 = jax.jit(Transformer(bf16).apply)({"params": params}, tokens)
    assert logits32.dtype == jnp.float32 and logits16.dtype == jnp.float32
    assert logits32.shape == (2, config.ctx, config.vocab_size)
    err = float(jnp.abs(logits16 - logits32).max())
    assert 0 < err < 0.1 * float(jnp.abs(logits32).max())
    assert float(jnp.std(logits32)) == pytest.approx(1.0, rel=0.5)  # unit-scale logits at init


def test_shorter_sequences_allowed(small_model) -> None:
    config, params = small_model
    tokens = jax.random.randint(jax.random.key(3), (1, config.ctx), 0, config.vocab_size)
    apply = jax.jit(Transformer(config).apply)
    full, short = apply({"params": params}, tokens), apply({"params": params}, tokens[:, :7])
    np.testing.assert_allclose(short, full[:, :7], rtol=1e-5, atol=1e-5)
