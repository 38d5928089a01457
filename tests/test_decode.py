"""KV-cache decoding against an independent reference: greedy argmax by full recomputation of
the whole sequence at every step (plain `Transformer.apply`, no cache), token for token, for
several model variants, unsharded and on a 2x2x2 mesh; EOS, seeds and length errors."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lab.config import ModelConfig
from lab.decode import DecodeError, generate, until_eos
from lab.model import Transformer
from lab.sampling import SamplingConfig
from lab.sharding import make_mesh, param_shardings

GREEDY = SamplingConfig(greedy=True)
PROMPT = np.array([[1, 2, 3, 4, 5], [9, 8, 7, 6, 5], [3, 3, 3, 3, 3]], np.int32)
NEW = 14


def tiny(**kw) -> ModelConfig:
    base = dict(n_layers=2, d_model=32, n_heads=4, d_ff=64, vocab_size=64, ctx=24)
    return ModelConfig(**{**base, **kw})


def init(model: ModelConfig, seed: int = 1):
    tokens = jnp.zeros((1, model.ctx), jnp.int32)
    return nn.meta.unbox(Transformer(model).init(jax.random.key(seed), tokens)["params"])


def greedy_by_recomputation(params, model: ModelConfig, prompt_BxT: np.ndarray, n: int):
    """Argmax of the full forward over the padded sequence (causal: padding is unseen)."""
    apply = jax.jit(lambda p, x: Transformer(model).apply({"params": p}, x))
    b, t = prompt_BxT.shape
    seq_BxC = np.zeros((b, model.ctx), np.int32)
    seq_BxC[:, :t] = prompt_BxT
    for i in range(n):
        logits_BxCxV = np.asarray(apply(params, seq_BxC))
        seq_BxC[:, t + i] = np.argmax(logits_BxCxV[:, t + i - 1], axis=-1)
    return seq_BxC[:, t : t + n]


VARIANTS = {
    "rope-gelu-tied": {},
    "learned-swiglu-untied": {"position": "learned", "mlp": "swiglu", "tied_embeddings": False},
    "rope-swiglu-untied-1layer": {"mlp": "swiglu", "tied_embeddings": False, "n_layers": 1},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_cached_greedy_equals_full_recomputation(variant: str) -> None:
    model = tiny(**VARIANTS[variant])
    params = init(model)
    want = greedy_by_recomputation(params, model, PROMPT, NEW)
    got = generate(params, model, PROMPT, max_new_tokens=NEW, sampling=GREEDY)
    np.testing.assert_array_equal(got, want)
    assert len({tuple(r) for r in want}) == 3  # rows differ: the check is not degenerate


def test_cached_greedy_on_a_sharded_mesh_equals_recomputation() -> None:
    model = tiny(position="learned")
    params = init(model, seed=2)
    want = greedy_by_recomputation(params, model, PROMPT, NEW)
    mesh = make_mesh((2, 2, 2))  # batch over data x fsdp (3 rows padded to 4), heads on tensor
    sharded = jax.device_put(params, param_shardings(model, mesh))
    got = generate(sharded, model, PROMPT, max_new_tokens=NEW, sampling=GREEDY, mesh=mesh)
    np.testing.assert_array_equal(got, want)


def test_scanned_blocks_decode_like_the_loop_on_a_mesh() -> None:
    """scan_layers: the cache is one [L, B, S, H, K] stack sliced per layer by the scan."""
    from lab.model import stack_blocks

    loop = tiny(mlp="swiglu")
    params = init(loop, seed=3)
    want = greedy_by_recomputation(params, loop, PROMPT, NEW)
    scan = tiny(mlp="swiglu", scan_layers=True, remat="full")
    stacked = stack_blocks(params, loop.n_layers)
    np.testing.assert_array_equal(
        generate(stacked, scan, PROMPT, max_new_tokens=NEW, sampling=GREEDY), want
    )
    mesh = make_mesh((2, 2, 2))
    sharded = jax.device_put(stacked, param_shardings(scan, mesh))
    got = generate(sharded, scan, PROMPT, max_new_tokens=NEW, sampling=GREEDY, mesh=mesh)
    np.testing.assert_array_equal(got, want)


def test_eos_stops_each_row_and_pads_after_it() -> None:
    model = tiny()
    params = init(model)
    free = generate(params, model, PROMPT, max_new_tokens=NEW, sampling=GREEDY)
    eos = int(free[0, 3])
    first = [int(np.argmax(r == eos)) if (r == eos).any() else None for r in free]
    got = generate(params, model, PROMPT, max_new_tokens=NEW, sampling=GREEDY, eos_id=eos, pad_id=0)
    for row, stop, free_row in zip(got, first, free, strict=True):
        if stop is None:
            np.testing.assert_array_equal(row, free_row)
        else:
            np.testing.assert_array_equal(row[: stop + 1], free_row[: stop + 1])
            assert (row[stop + 1 :] == 0).all()
    assert list(until_eos(got[0], eos)) == list(free[0, : first[0]])


def test_same_seed_same_tokens_other_seed_other_tokens() -> None:
    model = tiny()
    params = init(model)
    config = SamplingConfig(temperature=1.5)
    a = generate(params, model, PROMPT, max_new_tokens=NEW, sampling=config, seed=4)
    b = generate(params, model, PROMPT, max_new_tokens=NEW, sampling=config, seed=4)
    c = generate(params, model, PROMPT, max_new_tokens=NEW, sampling=config, seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_length_and_prompt_errors() -> None:
    model = tiny()
    params = init(model)
    with pytest.raises(DecodeError, match="exceeds the model's context of 24 tokens; use max_new"):
        generate(params, model, PROMPT, max_new_tokens=20)
    with pytest.raises(DecodeError, match="shorten the prompt"):
        generate(params, model, np.ones((1, 30), np.int32), max_new_tokens=1)
    with pytest.raises(DecodeError, match="max_new_tokens must be >= 1"):
        generate(params, model, PROMPT, max_new_tokens=0)
    with pytest.raises(DecodeError, match="no tokens"):
        generate(params, model, np.zeros((1, 0), np.int32), max_new_tokens=3)
    with pytest.raises(DecodeError, match=r"\[0, 64\)"):
        generate(params, model, np.array([[1, 99]]), max_new_tokens=3)
