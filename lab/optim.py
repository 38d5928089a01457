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

muP (`model.parameterization = "mup"`, see `lab.mup`): the parameters are split by path with
`optax.multi_transform` into hidden matrices (AdamW at peak * d0/d, decay scaled alike) and
vector-like ones (AdamW at peak); clipping stays global. SP keeps the single AdamW above, so
its optimizer state and numerics are exactly those of a model without the switch.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from lab import mup
from lab.config import ModelConfig, OptimizerConfig
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


def _path_names(path: tuple) -> tuple[str, ...]:
    return tuple(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def mup_labels(model: ModelConfig) -> Any:
    """A label function for `optax.multi_transform`: "hidden" or "vector" by parameter path."""
    from lab.counting import param_specs

    axes = {path: names for path, (_, names) in param_specs(model).items()}

    def label(params: Any) -> Any:
        def one(path: tuple, leaf: Any) -> str:
            names = _path_names(path)
            if names not in axes:
                raise ConfigError(
                    f"muP: {'/'.join(names)} is not a parameter of the model config "
                    f"(d_model={model.d_model}, n_layers={model.n_layers}); build the optimizer "
                    "with the same ModelConfig as the model"
                )
            return "hidden" if mup.is_matrix_like(axes[names]) else "vector"

        return jax.tree_util.tree_map_with_path(one, params)

    return label


def make_optimizer(
    config: OptimizerConfig, total_steps: int, model: ModelConfig | None = None
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """(AdamW with clipping, its schedule) for a run of exactly `total_steps` updates.

    Pass the `model` config so a muP model gets its per-layer learning rates (SP ignores it).
    The returned schedule is the peak-LR (vector-like parameters') schedule.
    """
    schedule = make_schedule(config, total_steps)

    def adamw_with(lr: optax.Schedule) -> optax.GradientTransformation:
        return optax.adamw(
            lr,
            b1=config.b1,
            b2=config.b2,
            eps=config.eps,
            weight_decay=config.weight_decay,
            mask=decay_mask,
        )

    if model is not None and mup.is_mup(model):
        ratio = 1.0 / mup.width_ratio(model)
        adamw = optax.multi_transform(
            {
                "hidden": adamw_with(lambda step: schedule(step) * ratio),
                "vector": adamw_with(schedule),
            },
            mup_labels(model),
        )
    else:
        adamw = adamw_with(schedule)
    if config.clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(config.clip_norm), adamw), schedule
    return adamw, schedule
