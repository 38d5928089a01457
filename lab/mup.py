"""muP (Yang et al. 2022, "Tensor Programs V", Tables 3 and 8, Adam): the width-dependent
multipliers, in one place so the model and the optimizer agree. No JAX here.

With width d = d_model and base width d0 = `mup_base_width` (where muP equals SP for init and
readout), a parameter is *matrix-like* ("hidden") when two of its logical axes grow with width
(embed, heads, mlp): QKV, attention output, MLP in/out. Everything else is *vector-like*: token
and position embeddings (vocab x embed), the untied readout (embed x vocab), norm scales.

- hidden matrices: init std 1/sqrt(fan_in) (as SP), Adam LR x d0/d;
- embeddings: init std 1/sqrt(d0) (constant in width), Adam LR unscaled;
- readout: logits x d0/d (the "readout multiplier"; tied or untied), untied kernel init std
  1/sqrt(d0), Adam LR unscaled: together Table 3's output-weight rule (var 1/fan_in^2, LR 1/fan_in);
- attention logits scaled 1/head_dim instead of 1/sqrt(head_dim).
Decoupled weight decay is multiplied by the same per-parameter LR factor (as mup's MuAdamW).
"""

from __future__ import annotations

import math

from lab.config import ModelConfig
from lab.counting import param_specs

WIDTH_AXES = frozenset({"embed", "heads", "mlp"})


def is_mup(config: ModelConfig) -> bool:
    return config.parameterization == "mup"


def is_matrix_like(axes: tuple[str | None, ...]) -> bool:
    """Two (or more) width-scaled dimensions: a hidden weight in muP's sense."""
    return sum(1 for a in axes if a in WIDTH_AXES) >= 2


def width_ratio(config: ModelConfig) -> float:
    """d / d0: how much wider than the base model this one is."""
    return config.d_model / config.mup_base_width


def lr_multipliers(config: ModelConfig) -> dict[tuple[str, ...], float]:
    """Per-parameter Adam LR factor by path: d0/d for hidden matrices under muP, else 1."""
    hidden = 1.0 / width_ratio(config) if is_mup(config) else 1.0
    return {
        path: hidden if is_matrix_like(axes) else 1.0
        for path, (_, axes) in param_specs(config).items()
    }


def readout_multiplier(config: ModelConfig) -> float:
    """Factor on the logits: d0/d under muP, 1 under SP."""
    return 1.0 / width_ratio(config) if is_mup(config) else 1.0


def attention_scale(config: ModelConfig) -> float:
    """Softmax temperature of q.k: 1/head_dim under muP, 1/sqrt(head_dim) under SP."""
    k = config.head_dim
    return 1.0 / k if is_mup(config) else 1.0 / math.sqrt(k)


def vector_init_std(config: ModelConfig) -> float | None:
    """Init std of embeddings and the untied readout under muP (1/sqrt(d0)); None under SP."""
    return 1.0 / math.sqrt(config.mup_base_width) if is_mup(config) else None
