"""Autoregressive decoding with a key/value cache, in the same pure-functional Transformer.

    tokens_BxN = generate(params, model, prompt_BxT, max_new_tokens=64,
                          sampling=SamplingConfig(temperature=0.8, top_p=0.95), seed=0,
                          eos_id=tok.eos_id, pad_id=tok.pad_id, mesh=mesh)

The cache is a pytree (`KVCache`: per layer {"k", "v"} of [B, S, H, K], or with scan_layers one
{"k", "v"} of [L, B, S, H, K] that the scanned blocks slice per layer, plus the filled length)
passed into `Transformer.apply(..., cache=, offset=)` and returned updated; nothing is hidden in
module state. One jitted function runs the prompt through the model at once (prefill), then a
`lax.while_loop` samples a token, writes it, and feeds it back one position at a time, stopping
at `max_new_tokens` or once every row has produced EOS (rows that finished early are padded
with `pad_id` after their EOS). With a `mesh`, parameters keep their training shardings and
the cache carries the logical names (batch, seq, heads, kv), so it shards like the attention
activations under the same rules (`lab.sharding`): a model decodes on the mesh it trained on.

All rows of a batch share one prompt length (no ragged prompts). The model never sees more
than `ctx` tokens: prompt + max_new_tokens > ctx is a `DecodeError` (no silent truncation).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from lab import sharding
from lab.config import ModelConfig
from lab.errors import ConfigError
from lab.model import Transformer
from lab.sampling import DEFAULT_SAMPLING, SamplingConfig, sample_logits

CACHE_AXES = ("batch", "seq", "heads", "kv")


class DecodeError(ConfigError):
    """A decoding request cannot be served (prompt too long, no prompt, ...); says the fix."""


class KVCache(flax.struct.PyTreeNode):
    """Keys and values of every position decoded so far; `length` = positions filled."""

    # per layer {"k", "v"}: [B, S, H, K]; with scan_layers {"k", "v"}: [L, B, S, H, K]
    layers: list[dict[str, jax.Array]] | dict[str, jax.Array]
    length: jax.Array  # int32 scalar

    @property
    def max_len(self) -> int:
        return jax.tree.leaves(self.layers)[0].shape[-3]


def init_cache(model: ModelConfig, batch_size: int, max_len: int) -> KVCache:
    """An empty cache in the compute dtype, constrained by its logical names (on the mesh
    inside `lab.sharding.activation_rules`)."""
    shape = (batch_size, max_len, model.n_heads, model.head_dim)
    dtype = jnp.dtype(model.compute_dtype)
    if model.scan_layers:
        stacked = (model.n_layers, *shape)
        names = ("layers", *CACHE_AXES)
        layers: Any = {
            kv: nn.with_logical_constraint(jnp.zeros(stacked, dtype), names) for kv in "kv"
        }
    else:
        layers = [
            {kv: nn.with_logical_constraint(jnp.zeros(shape, dtype), CACHE_AXES) for kv in "kv"}
            for _ in range(model.n_layers)
        ]
    return KVCache(layers=layers, length=jnp.zeros((), jnp.int32))


def forward(
    params: Any, model: ModelConfig, tokens_BxT: jax.Array, cache: KVCache
) -> tuple[jax.Array, KVCache]:
    """Logits f32[B, T, V] of T new tokens at positions cache.length.. and the updated cache."""
    logits_BxTxV, layers = Transformer(model).apply(
        {"params": params}, tokens_BxT, cache=cache.layers, offset=cache.length
    )
    return logits_BxTxV, KVCache(layers=layers, length=cache.length + tokens_BxT.shape[1])


def check_lengths(model: ModelConfig, prompt_len: int, max_new_tokens: int) -> None:
    """Prompt and completion must fit the model's context (positions it was trained on)."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise DecodeError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    if max_new_tokens < 1:
        raise DecodeError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if prompt_len < 1:
        raise DecodeError("the prompt has no tokens; give at least one (e.g. the EOS id)")
    if prompt_len + max_new_tokens > model.ctx:
        room = model.ctx - prompt_len
        fix = (
            f"use max_new_tokens <= {room}"
            if room >= 1
            else f"shorten the prompt to at most {model.ctx - 1} tokens"
        )
        raise DecodeError(
            f"prompt ({prompt_len} tokens) + max_new_tokens ({max_new_tokens}) exceeds the "
            f"model's context of {model.ctx} tokens; {fix}"
        )


def _decode_fn(model, max_new_tokens, sampling, eos_id, pad_id) -> Callable:
    """(params, prompt_BxT, rng) -> tokens int32[B, max_new_tokens], not yet jitted."""

    def run(params: Any, prompt_BxT: jax.Array, rng: jax.Array) -> jax.Array:
        b, t = prompt_BxT.shape
        cache = init_cache(model, b, t + max_new_tokens)
        logits_BxTxV, cache = forward(params, model, prompt_BxT, cache)
        out_BxN = jnp.full((b, max_new_tokens), pad_id, jnp.int32)
        done_B = jnp.zeros((b,), bool)

        def cond(carry) -> jax.Array:
            i, _, _, _, done_B = carry
            return (i < max_new_tokens) & ~jnp.all(done_B)

        def body(carry):
            i, logits_BxV, cache, out_BxN, done_B = carry
            token_B = sample_logits(jax.random.fold_in(rng, i), logits_BxV, sampling)
            token_B = jnp.where(done_B, pad_id, token_B)
            out_BxN = jax.lax.dynamic_update_slice(out_BxN, token_B[:, None], (0, i))
            done_B = done_B | (token_B == eos_id)
            logits_Bx1xV, cache = forward(params, model, token_B[:, None], cache)
            return i + 1, logits_Bx1xV[:, 0], cache, out_BxN, done_B

        carry = (jnp.zeros((), jnp.int32), logits_BxTxV[:, -1], cache, out_BxN, done_B)
        return jax.lax.while_loop(cond, body, carry)[3]

    return run


@functools.lru_cache(maxsize=32)
def make_generate(
    model: ModelConfig,
    *,
    max_new_tokens: int,
    sampling: SamplingConfig = DEFAULT_SAMPLING,
    eos_id: int | None = None,
    pad_id: int = 0,
    mesh: Mesh | None = None,
) -> Callable[[Any, jax.Array, jax.Array], jax.Array]:
    """Jitted (params, prompt int32[B, T], rng key) -> int32[B, max_new_tokens] (memoised).

    With a mesh: params in their training shardings, prompt and output split on batch over
    data x fsdp (B must divide; `generate` pads it), the rng replicated.
    """
    eos = -1 if eos_id is None else eos_id
    run = _decode_fn(model, max_new_tokens, sampling, eos, pad_id)
    if mesh is None:
        return jax.jit(run)
    rows = sharding.batch_sharding(mesh)
    return jax.jit(
        sharding.with_activation_rules(run, mesh),
        in_shardings=(sharding.param_shardings(model, mesh), rows, sharding.replicated(mesh)),
        out_shardings=rows,
    )


def generate(
    params: Any,
    model: ModelConfig,
    prompt_BxT: Any,
    *,
    max_new_tokens: int,
    sampling: SamplingConfig = DEFAULT_SAMPLING,
    seed: int = 0,
    eos_id: int | None = None,
    pad_id: int = 0,
    mesh: Mesh | None = None,
) -> np.ndarray:
    """Sample `max_new_tokens` after each prompt row; int32 [B, max_new_tokens] on the host.

    After a row's EOS (kept in the output) the row is `pad_id`. Same seed, same tokens.
    """
    prompt_BxT = np.asarray(prompt_BxT)
    if prompt_BxT.ndim == 1:
        prompt_BxT = prompt_BxT[None]
    if prompt_BxT.ndim != 2 or not np.issubdtype(prompt_BxT.dtype, np.integer):
        raise DecodeError(f"prompt must be integer token ids [B, T], got {prompt_BxT.shape}")
    if prompt_BxT.size and (prompt_BxT.min() < 0 or prompt_BxT.max() >= model.vocab_size):
        raise DecodeError(f"prompt token ids must be in [0, {model.vocab_size}) (model vocab)")
    check_lengths(model, prompt_BxT.shape[1], max_new_tokens)
    b = prompt_BxT.shape[0]
    if mesh is not None:  # the batch must split over data x fsdp: repeat rows, drop them after
        extra = -b % sharding.batch_ways(mesh)
        prompt_BxT = np.concatenate([prompt_BxT, np.repeat(prompt_BxT[:1], extra, 0)])
    fn = make_generate(
        model,
        max_new_tokens=max_new_tokens,
        sampling=sampling,
        eos_id=eos_id,
        pad_id=pad_id,
        mesh=mesh,
    )
    tokens = fn(params, jnp.asarray(prompt_BxT, jnp.int32), jax.random.key(seed))
    return np.asarray(jax.device_get(tokens))[:b]


def until_eos(tokens_N: Any, eos_id: int | None) -> np.ndarray:
    """A generated row up to (not including) its first EOS."""
    tokens_N = np.asarray(tokens_N).reshape(-1)
    if eos_id is None:
        return tokens_N
    hits = np.flatnonzero(tokens_N == eos_id)
    return tokens_N[: hits[0]] if hits.size else tokens_N
