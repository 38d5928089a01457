"""Decoder-only pre-norm transformer in flax.linen, applied as a pure function.

    logits_BxTxV = Transformer(config).apply({"params": params}, tokens_BxT)   # f32

No biases; RMSNorm (scale only); fused QKV as one [d, 3, d] matmul; RoPE or learned positions;
GELU or SwiGLU; tied or untied embeddings. Params are fp32 and cast to `compute_dtype` at use;
norms, softmax and logits run in fp32. Parameter names and shapes are listed, without JAX, by
`lab.counting.param_specs` (a test keeps the two identical).

Every parameter carries logical axis names (nn.with_logical_partitioning) and the main
activations are constrained by name (batch, seq, embed, heads, kv, mlp, vocab). The names
resolve to mesh axes only inside `lab.sharding.activation_rules(mesh)` (context, as in Flax's
lm1b example); outside it the constraints are no-ops and this is the plain unsharded model.

Memory features (`ModelConfig`): `scan_layers` runs the blocks under `nn.scan` with parameters
stacked on a leading "layers" axis (scope "blocks" instead of "block_0".."block_{L-1}";
`stack_blocks` / `unstack_blocks` convert between the layouts); `remat` wraps each block in
`nn.remat` with a `jax.checkpoint_policies` policy. Neither changes the function computed.

Kept in one place for later work: `init_stddevs` (every init scale; a muP switch changes only it
and `Transformer.readout`), and `Attention.attend` (the core a KV-cache decode path reuses).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lab import mup
from lab.config import ModelConfig
from lab.counting import BLOCKS

REMAT_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "save-dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def init_stddevs(config: ModelConfig) -> dict[str, float]:
    """Normal init std of every parameter kind (fan-in scaling; residual outputs / sqrt(2L))."""
    d, f = config.d_model, config.d_ff
    residual = 1.0 / math.sqrt(2 * config.n_layers)
    vector = mup.vector_init_std(config)  # muP: embeddings and readout constant in width
    return {
        "embed": vector or 1.0 / math.sqrt(d),  # tied readout: unit-variance logits at init
        "pos_embed": vector or 1.0 / math.sqrt(d),
        "qkv": 1.0 / math.sqrt(d),
        "attn_out": residual / math.sqrt(d),
        "mlp_in": 1.0 / math.sqrt(d),
        "mlp_out": residual / math.sqrt(f),
        "lm_head": vector or 1.0 / math.sqrt(d),
    }


def _param(module: nn.Module, name: str, std: float, shape: tuple[int, ...], names: tuple) -> Any:
    init = nn.with_logical_partitioning(nn.initializers.normal(stddev=std), names)
    return module.param(name, init, shape, jnp.float32)


def constrain(x: jax.Array, names: tuple[str | None, ...]) -> jax.Array:
    """Activation sharding by logical names; a no-op outside `lab.sharding.activation_rules`."""
    return nn.with_logical_constraint(x, names)


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned scale, computed in fp32."""

    dtype: Any
    eps: float = 1e-6

    @nn.compact
    def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
        init = nn.with_logical_partitioning(nn.initializers.ones, ("embed",))
        scale = self.param("scale", init, (x_BxTxD.shape[-1],), jnp.float32)
        x = x_BxTxD.astype(jnp.float32)
        x = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + self.eps)
        return (x * scale).astype(self.dtype)


def rope(x_BxTxHxK: jax.Array, base: float = 10000.0, offset: jax.Array | None = None) -> jax.Array:
    """Rotary position embedding (half-split / GPT-NeoX layout), angles in fp32.

    `offset`: absolute position of the first of the T tokens (KV-cache decoding); default 0."""
    t, k = x_BxTxHxK.shape[1], x_BxTxHxK.shape[-1]
    inv_freq = base ** (-jnp.arange(0, k, 2, dtype=jnp.float32) / k)
    positions_T = jnp.arange(t, dtype=jnp.float32)
    if offset is not None:
        positions_T = positions_T + jnp.asarray(offset, jnp.float32)
    angles_TxK2 = positions_T[:, None] * inv_freq[None, :]
    sin = jnp.sin(angles_TxK2)[None, :, None, :].astype(x_BxTxHxK.dtype)
    cos = jnp.cos(angles_TxK2)[None, :, None, :].astype(x_BxTxHxK.dtype)
    x1, x2 = jnp.split(x_BxTxHxK, 2, axis=-1)
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def _use_fused_attention(dtype: Any) -> bool:
    """On GPU in bf16, jax.nn.dot_product_attention (cuDNN flash attention when available, XLA
    otherwise) avoids materialising [B, H, T, T] scores. On CPU the explicit einsums below were
    faster (measured) and are what the FLOPs test checks against XLA's count."""
    return jax.default_backend() == "gpu" and jnp.dtype(dtype) == jnp.bfloat16


class Attention(nn.Module):
    config: ModelConfig

    @nn.compact
    def __call__(self, x_BxTxD: jax.Array, cache: Any = None, offset: Any = None) -> Any:
        """y [B, T, D]; with a KV `cache` ({"k", "v"}: [B, S, H, K]) and the absolute position
        `offset` of x's first token, (y, cache with these T keys/values written at offset)."""
        cfg, std = self.config, init_stddevs(self.config)
        dtype = jnp.dtype(cfg.compute_dtype)
        b, t, d = x_BxTxD.shape
        h, k = cfg.n_heads, cfg.head_dim
        w_qkv = _param(self, "qkv", std["qkv"], (d, 3, d), ("embed", None, "heads"))
        qkv_BxTx3xD = jnp.einsum("btd,dse->btse", x_BxTxD, w_qkv.astype(dtype))
        qkv_BxTx3xD = constrain(qkv_BxTx3xD, ("batch", "seq", None, "heads"))
        q, key, v = (qkv_BxTx3xD[:, :, i].reshape(b, t, h, k) for i in range(3))
        if cfg.position == "rope":
            q, key = rope(q, offset=offset), rope(key, offset=offset)
        if cache is not None:  # decode: write the new keys/values, attend over the whole cache
            at = (0, offset, 0, 0)
            cache = {
                "k": jax.lax.dynamic_update_slice(cache["k"], key.astype(cache["k"].dtype), at),
                "v": jax.lax.dynamic_update_slice(cache["v"], v.astype(cache["v"].dtype), at),
            }
            key, v = cache["k"], cache["v"]
        out_BxTxHxK = self.attend(q, key, v, offset)
        out_BxTxD = out_BxTxHxK.reshape(b, t, d)
        w_out = _param(self, "out", std["attn_out"], (d, d), ("heads", "embed"))
        y_BxTxD = jnp.dot(out_BxTxD, w_out.astype(dtype))
        y_BxTxD = constrain(y_BxTxD, ("batch", "seq", "embed"))
        return y_BxTxD if cache is None else (y_BxTxD, cache)

    def attend(
        self, q_BxTxHxK: jax.Array, k_BxSxHxK: jax.Array, v_BxSxHxK: jax.Array, offset: Any = None
    ):
        """Causal softmax attention; scores and softmax in fp32, queries aligned to the end, or,
        given `offset` (KV cache), query i at absolute position offset + i: later slots masked."""
        names = ("batch", "seq", "heads", "kv")
        q_BxTxHxK = constrain(q_BxTxHxK, names)
        k_BxSxHxK = constrain(k_BxSxHxK, names)
        v_BxSxHxK = constrain(v_BxSxHxK, names)
        t, s, k = q_BxTxHxK.shape[1], k_BxSxHxK.shape[1], q_BxTxHxK.shape[-1]
        if offset is None and t == s and _use_fused_attention(q_BxTxHxK.dtype):
            scale = mup.attention_scale(self.config) if mup.is_mup(self.config) else None
            out_BxTxHxK = jax.nn.dot_product_attention(
                q_BxTxHxK, k_BxSxHxK, v_BxSxHxK, scale=scale, is_causal=True
            )
            return constrain(out_BxTxHxK, names)
        scale = 1.0 / k if mup.is_mup(self.config) else 1.0 / math.sqrt(k)  # muP: 1/head_dim
        q_BxTxHxK = q_BxTxHxK * jnp.asarray(scale, q_BxTxHxK.dtype)  # T*K, not T*S
        scores_BxHxTxS = jnp.einsum(
            "bthk,bshk->bhts", q_BxTxHxK, k_BxSxHxK, preferred_element_type=jnp.float32
        )
        start = s - t if offset is None else offset
        causal_TxS = jnp.arange(t)[:, None] + start >= jnp.arange(s)[None, :]
        scores_BxHxTxS = jnp.where(causal_TxS, scores_BxHxTxS, jnp.finfo(jnp.float32).min)
        probs_BxHxTxS = jax.nn.softmax(scores_BxHxTxS, axis=-1).astype(v_BxSxHxK.dtype)
        out_BxTxHxK = jnp.einsum("bhts,bshk->bthk", probs_BxHxTxS, v_BxSxHxK)
        return constrain(out_BxTxHxK, names)


class Mlp(nn.Module):
    config: ModelConfig

    @nn.compact
    def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
        cfg, std = self.config, init_stddevs(self.config)
        dtype = jnp.dtype(cfg.compute_dtype)
        d, f = cfg.d_model, cfg.d_ff
        names = ("batch", "seq", "mlp")
        if cfg.mlp == "swiglu":
            w_in = _param(self, "wi", std["mlp_in"], (d, 2, f), ("embed", None, "mlp"))
            gate_up_BxTx2xF = jnp.einsum("btd,dgf->btgf", x_BxTxD, w_in.astype(dtype))
            gate_up_BxTx2xF = constrain(gate_up_BxTx2xF, ("batch", "seq", None, "mlp"))
            h_BxTxF = jax.nn.silu(gate_up_BxTx2xF[:, :, 0]) * gate_up_BxTx2xF[:, :, 1]
        else:
            w_in = _param(self, "wi", std["mlp_in"], (d, f), ("embed", "mlp"))
            h_BxTxF = jax.nn.gelu(constrain(jnp.dot(x_BxTxD, w_in.astype(dtype)), names))
        h_BxTxF = constrain(h_BxTxF, names)
        w_out = _param(self, "wo", std["mlp_out"], (f, d), ("mlp", "embed"))
        return constrain(jnp.dot(h_BxTxF, w_out.astype(dtype)), ("batch", "seq", "embed"))


class Block(nn.Module):
    """(x [B, T, D], layer cache or None, offset) -> (x, updated layer cache or None): the
    carry/output form nn.scan needs, used by the Python loop too."""

    config: ModelConfig

    @nn.compact
    def __call__(self, x_BxTxD: jax.Array, cache: Any = None, offset: Any = None) -> Any:
        dtype = jnp.dtype(self.config.compute_dtype)
        attn = Attention(self.config, name="attn")
        if cache is None:
            x_BxTxD = x_BxTxD + attn(RMSNorm(dtype, name="attn_norm")(x_BxTxD))
        else:
            y_BxTxD, cache = attn(RMSNorm(dtype, name="attn_norm")(x_BxTxD), cache, offset)
            x_BxTxD = x_BxTxD + y_BxTxD
        mlp = Mlp(self.config, name="mlp")
        x_BxTxD = x_BxTxD + mlp(RMSNorm(dtype, name="mlp_norm")(x_BxTxD))
        return constrain(x_BxTxD, ("batch", "seq", "embed")), cache


def block_class(config: ModelConfig) -> type[nn.Module]:
    """Block, wrapped in nn.remat with the config's policy (prevent_cse only matters outside
    a scan, where XLA could otherwise merge the recomputation back into the forward)."""
    if config.remat == "none":
        return Block
    policy = REMAT_POLICIES[config.remat]
    return nn.remat(Block, policy=policy, prevent_cse=not config.scan_layers)


def scanned_blocks(config: ModelConfig) -> type[nn.Module]:
    """All blocks as one nn.scan: params stacked on axis 0, named "layers" for the rules."""
    return nn.scan(
        block_class(config),
        variable_axes={"params": 0},
        split_rngs={"params": True},
        in_axes=(0, nn.broadcast),  # the cache is scanned per layer, the offset is shared
        length=config.n_layers,
        metadata_params={nn.PARTITION_NAME: "layers"},
    )


def stack_blocks(params: Any, n_layers: int) -> Any:
    """Loop-layout params (block_0..block_{L-1}) -> scan layout (blocks, stacked on axis 0)."""
    layers = [params[f"block_{i}"] for i in range(n_layers)]
    rest = {k: v for k, v in params.items() if not k.startswith("block_")}
    return {**rest, BLOCKS: jax.tree.map(lambda *xs: jnp.stack(xs), *layers)}


def unstack_blocks(params: Any, n_layers: int) -> Any:
    """Scan-layout params -> loop layout: the inverse of `stack_blocks`."""
    rest = {k: v for k, v in params.items() if k != BLOCKS}
    layers = {
        f"block_{i}": jax.tree.map(lambda x, i=i: x[i], params[BLOCKS]) for i in range(n_layers)
    }
    return {**rest, **layers}


class Table(nn.Module):
    """A bare parameter in its own scope (embeddings, untied unembedding)."""

    param_name: str
    shape: tuple[int, ...]
    names: tuple[str | None, ...]
    std: float

    @nn.compact
    def __call__(self) -> jax.Array:
        return _param(self, self.param_name, self.std, self.shape, self.names)


class Transformer(nn.Module):
    """tokens int[B, T] -> logits f32[B, T, vocab]; T <= config.ctx.

    Decoding (lab.decode): `apply(params, tokens_BxT, cache=layers, offset=pos)` with `cache` a
    list (one per layer) of {"k", "v"}: [B, S, H, K] (with scan_layers one {"k", "v"} of
    [L, B, S, H, K]) and `offset` the absolute position of tokens_BxT[:, 0] returns (logits,
    updated cache); the training forward is unchanged.
    """

    config: ModelConfig

    @nn.compact
    def __call__(self, tokens_BxT: jax.Array, cache: Any = None, offset: Any = None) -> Any:
        cfg, std = self.config, init_stddevs(self.config)
        dtype = jnp.dtype(cfg.compute_dtype)
        v, d, t = cfg.vocab_size, cfg.d_model, tokens_BxT.shape[1]
        embedding_VxD = Table("embedding", (v, d), ("vocab", "embed"), std["embed"], name="embed")()
        x_BxTxD = jnp.take(embedding_VxD, tokens_BxT, axis=0).astype(dtype)
        if cfg.position == "learned":
            pos_CxD = Table(
                "embedding", (cfg.ctx, d), (None, "embed"), std["pos_embed"], name="pos_embed"
            )()
            if cache is None:
                pos_TxD = pos_CxD[:t]
            else:
                pos_TxD = jax.lax.dynamic_slice_in_dim(pos_CxD, offset, t, axis=0)
            x_BxTxD = x_BxTxD + pos_TxD[None].astype(dtype)
        x_BxTxD = constrain(x_BxTxD, ("batch", "seq", "embed"))
        if cfg.scan_layers:
            x_BxTxD, new_cache = scanned_blocks(cfg)(cfg, name=BLOCKS)(x_BxTxD, cache, offset)
        else:
            block, new_cache = block_class(cfg), []
            for i in range(cfg.n_layers):
                layer_cache = None if cache is None else cache[i]
                x_BxTxD, layer_cache = block(cfg, name=f"block_{i}")(x_BxTxD, layer_cache, offset)
                new_cache.append(layer_cache)
        x_BxTxD = RMSNorm(dtype, name="final_norm")(x_BxTxD)
        logits_BxTxV = self.readout(x_BxTxD, embedding_VxD)
        return logits_BxTxV if cache is None else (logits_BxTxV, new_cache)

    def readout(self, x_BxTxD: jax.Array, embedding_VxD: jax.Array) -> jax.Array:
        """Unembedding to fp32 logits (tied: the embedding's transpose)."""
        cfg = self.config
        if cfg.tied_embeddings:
            w_DxV = embedding_VxD.T
        else:
            shape, names = (cfg.d_model, cfg.vocab_size), ("embed", "vocab")
            w_DxV = Table("kernel", shape, names, init_stddevs(cfg)["lm_head"], name="lm_head")()
        w_DxV = w_DxV.astype(jnp.dtype(cfg.compute_dtype))
        logits_BxTxV = jnp.dot(x_BxTxD, w_DxV, preferred_element_type=jnp.float32)
        if mup.is_mup(cfg):  # muP readout multiplier d0/d; SP logits untouched
            logits_BxTxV = logits_BxTxV * mup.readout_multiplier(cfg)
        return constrain(logits_BxTxV, ("batch", "seq", "vocab"))
