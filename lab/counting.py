"""Parameter and FLOP counts of a `ModelConfig`, analytic and exact, in one place.

No JAX here: the sweep solver, `scaling-lab info` and the MFU meter all use these formulas.
`param_specs` lists every parameter of `lab.model.Transformer` (path, shape, logical axes);
a test checks it against the initialised pytree leaf by leaf, so the counts are exact. With
`scan_layers` the blocks' parameters are one stack per kind, path ("blocks", ...), with a
leading "layers" axis of size n_layers.

Conventions
- Total parameters: every leaf (Chinchilla). Non-embedding: without the token and position
  embeddings and the untied unembedding (Kaplan et al. 2020, who exclude embedding matrices).
- Training FLOPs per token = 3 x forward (backward = 2 x forward). The detailed count follows
  Chinchilla Appendix F / MaxText: QKV, attention scores and values, output projection, MLP,
  unembedding; matmuls only (embedding lookup, norms, softmax, activations are not counted).
  "full" counts T keys per query (what a masked T x T implementation executes); "causal" counts
  (T + 1) / 2 keys per query on average, the useful work of causal attention, used for MFU.
  (MaxText halves attention as "causal"; Levanter and nanoGPT count the full T x T, so their
  MFUs are higher for the same speed.)
"""

from __future__ import annotations

import math
from typing import Protocol


class ModelShape(Protocol):
    """What counting reads of a model: `lab.config.ModelConfig` is one (counting needs no
    import of it, so the config can call these formulas at module level)."""

    vocab_size: int
    ctx: int
    d_model: int
    d_ff: int
    n_layers: int
    mlp: str
    position: str
    tied_embeddings: bool
    scan_layers: bool


ParamSpec = tuple[tuple[int, ...], tuple[str | None, ...]]

BLOCKS = "blocks"  # scope of the scanned blocks' stacked parameters (scan_layers)
EMBEDDING_PATHS = (("embed", "embedding"), ("pos_embed", "embedding"), ("lm_head", "kernel"))


def param_specs(config: ModelShape) -> dict[tuple[str, ...], ParamSpec]:
    """Every parameter of the model: path -> (shape, logical axis names)."""
    d, f, v = config.d_model, config.d_ff, config.vocab_size
    specs: dict[tuple[str, ...], ParamSpec] = {("embed", "embedding"): ((v, d), ("vocab", "embed"))}
    if config.position == "learned":
        specs[("pos_embed", "embedding")] = ((config.ctx, d), (None, "embed"))
    block: dict[tuple[str, ...], ParamSpec] = {
        ("attn_norm", "scale"): ((d,), ("embed",)),
        ("attn", "qkv"): ((d, 3, d), ("embed", None, "heads")),
        ("attn", "out"): ((d, d), ("heads", "embed")),
        ("mlp_norm", "scale"): ((d,), ("embed",)),
        ("mlp", "wi"): ((d, 2, f), ("embed", None, "mlp"))
        if config.mlp == "swiglu"
        else ((d, f), ("embed", "mlp")),
        ("mlp", "wo"): ((f, d), ("mlp", "embed")),
    }
    if config.scan_layers:  # one stack per kind, layers first (lab.model.scanned_blocks)
        for path, (shape, names) in block.items():
            specs[(BLOCKS, *path)] = ((config.n_layers, *shape), ("layers", *names))
    else:
        for i in range(config.n_layers):
            specs.update({(f"block_{i}", *path): spec for path, spec in block.items()})
    specs[("final_norm", "scale")] = ((d,), ("embed",))
    if not config.tied_embeddings:
        specs[("lm_head", "kernel")] = ((d, v), ("embed", "vocab"))
    return specs


def num_params(config: ModelShape) -> int:
    """Total parameter count (Chinchilla's convention)."""
    return sum(math.prod(shape) for shape, _ in param_specs(config).values())


def num_embedding_params(config: ModelShape) -> int:
    """Token + position embeddings + untied unembedding."""
    specs = param_specs(config)
    return sum(math.prod(specs[p][0]) for p in EMBEDDING_PATHS if p in specs)


def num_nonembedding_params(config: ModelShape) -> int:
    """Kaplan's N: everything but the embedding matrices (norm scales included)."""
    return num_params(config) - num_embedding_params(config)


def forward_flops_breakdown(config: ModelShape, causal: bool = True) -> dict[str, float]:
    """Forward matmul FLOPs per token by component (2 FLOPs per multiply-add), summed over layers."""
    d, f, v, n_layers, t = (
        config.d_model,
        config.d_ff,
        config.vocab_size,
        config.n_layers,
        config.ctx,
    )
    keys_per_query = (t + 1) / 2 if causal else float(t)
    mlp_matrices = 3 if config.mlp == "swiglu" else 2
    return {
        "qkv": n_layers * 2.0 * d * 3 * d,
        "attention_scores": n_layers * 2.0 * keys_per_query * d,
        "attention_values": n_layers * 2.0 * keys_per_query * d,
        "attention_out": n_layers * 2.0 * d * d,
        "mlp": n_layers * 2.0 * mlp_matrices * d * f,
        "unembedding": 2.0 * d * v,
    }


def flops_per_token(config: ModelShape, convention: str = "causal") -> float:
    """Training FLOPs per token: "6N", "6N_nonemb", "causal" (for MFU) or "full" (executed)."""
    if convention == "6N":
        return 6.0 * num_params(config)
    if convention == "6N_nonemb":
        return 6.0 * num_nonembedding_params(config)
    if convention in ("causal", "full"):
        return 3.0 * sum(forward_flops_breakdown(config, causal=convention == "causal").values())
    from lab.errors import ConfigError

    raise ConfigError(
        f"unknown FLOPs convention {convention!r}; choose one of 6N, 6N_nonemb, causal, full"
    )


def recompute_flops_per_token(config: ModelShape) -> float:
    """Forward FLOPs per token the backward pass runs again under the config's `remat` policy:
    none for "none"; every block's forward for "full"; for "save-dots" the attention score and
    value products, the only matmuls with batch dimensions (`dots_with_no_batch_dims_saveable`
    keeps the others). Full T x T attention: what the compiled code executes."""
    remat = getattr(config, "remat", "none")
    if remat == "none":
        return 0.0
    forward = forward_flops_breakdown(config, causal=False)
    if remat == "save-dots":
        return forward["attention_scores"] + forward["attention_values"]
    return sum(value for name, value in forward.items() if name != "unembedding")


def executed_flops_per_token(config: ModelShape) -> float:
    """Training FLOPs per token the compiled step executes: the full-attention count plus the
    recomputation its remat policy adds (what XLA's cost analysis should count)."""
    return flops_per_token(config, "full") + recompute_flops_per_token(config)


def tokens_for_budget(config: ModelShape, flops: float, convention: str = "causal") -> float:
    """Training tokens a budget of `flops` buys for this model under `convention`."""
    return flops / flops_per_token(config, convention)
