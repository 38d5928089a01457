"""AdamW with global-norm clipping and a warmup + cosine schedule that ends with the run.

Schedule (step = index of the update, 0-based, W = warmup steps, S = total steps):
- step < W: linear warmup, lr = peak * (step + 1) / (W + 1) (never a wasted zero-lr step);
- W <= step <= S - 1: cosine from peak at step W to final_lr_fraction * peak at step S - 1
  exactly (Chinchilla: the cosine must end at the run's own budget). W is clamped to S - 2 so
  the last step is always the decayed one; a 1-step run trains at the final lr.
Weight decay (decoupled, AdamW) applies to matmul kernels only: not to norm scales (no
reason to pull a gain towards 0) and not to token/position embeddings (a row only gets
gradient when its token appears, so decay erodes rare tokens; OLMo 2 drops it for stability).
The untied readout `lm_head` is a matmul kernel and is decayed.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from lab.config import OptimizerConfig
from lab.errors import ConfigError

NO_DECAY_MODULES = ("embed", "pos_embed")


def warmup_steps(config: OptimizerConfig, total_steps: int) -> int:
    """Warmup length in steps, clamped so the last step is always on the cosine's end."""
    return max(0, min(config.warmup_for(total_steps), total_steps - 2))


def make_schedule(config: OptimizerConfig, total_steps: int) -> optax.Schedule:
    """lr(step) for steps 0..total_steps-1; see the module docstring."""
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ConfigError(f"total_steps must be a positive int, got {total_steps!r}")
    peak, final = config.peak_lr, config.peak_lr * config.final_lr_fraction
    warm = warmup_steps(config, total_steps)
    decay_span = max(total_steps - 1 - warm, 1)

    def schedule(step: Any) -> jax.Array:
        step = jnp.asarray(step, jnp.float32)
        warm_lr = peak * (step + 1.0) / (warm + 1.0)
        progress = jnp.clip((step - warm) / decay_span, 0.0, 1.0)
        if total_steps == 1:
            progress = jnp.ones_like(progress)
        cos_lr = final + (peak - final) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
        return jnp.where(step < warm, warm_lr, cos_lr)

    return schedule


def decay_mask(params: Any) -> Any:
    """True for leaves that get weight decay: >= 2-D kernels outside the embedding modules."""

    def decays(path: tuple, leaf: Any) -> bool:
        names = [getattr(k, "key", getattr(k, "name", None)) for k in path]
        return jnp.ndim(leaf) >= 2 and not any(n in NO_DECAY_MODULES for n in names)

    return jax.tree_util.tree_map_with_path(decays, params)


def make_optimizer(
    config: OptimizerConfig, total_steps: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """(AdamW with clipping, its schedule) for a run of exactly `total_steps` updates."""
    schedule = make_schedule(config, total_steps)
    adamw = optax.adamw(
        schedule,
        b1=config.b1,
        b2=config.b2,
        eps=config.eps,
        weight_decay=config.weight_decay,
        mask=decay_mask,
    )
    if config.clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(config.clip_norm), adamw), schedule
    return adamw, schedule
