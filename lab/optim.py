"""AdamW with global-norm clipping and a warmup + cosine (or WSD) schedule ending with the run.

Schedule (step = index of the update, 0-based, W = warmup steps, S = total steps):
- step < W: linear warmup, lr = peak * (step + 1) / (W + 1) (never a wasted zero-lr step);
- W <= step <= S - 1: cosine from peak at step W to final_lr_fraction * peak at step S - 1
  exactly (Chinchilla: the cosine must end at the run's own budget). W is clamped to S - 2 so
  the last step is always the decayed one; a 1-step run trains at the final lr.
WSD (`schedule = "wsd"`, K = cooldown_steps(S) = round(cooldown_fraction * S), s = S - K):
- step < W: the same linear warmup (W clamped to s);
- W <= step < s: peak exactly (a trunk's state at s is then a length-S run's state at s);
- s <= step: final + (peak - final) * g(p), p = (step - s + 1) / K in (0, 1], g(p) = 1 - p
  (linear) or 1 - sqrt(p) (1-sqrt): the last step trains at the final lr.
Weight decay (decoupled, AdamW) applies to matmul kernels only: not to norm scales (no
reason to pull a gain towards 0) and not to token/position embeddings (a row only gets
gradient when its token appears, so decay erodes rare tokens; OLMo 2 drops it for stability).
The untied readout `lm_head` is a matmul kernel and is decayed.

muP (`model.parameterization = "mup"`, see `lab.mup`): the parameters are split by path with
`optax.multi_transform` into hidden matrices (AdamW at peak * d0/d, decay scaled alike) and
vector-like ones (AdamW at peak); clipping stays global. SP keeps the single AdamW above, so
its optimizer state and numerics are exactly those of a model without the switch.

The schedule's numbers live in the optimizer state (`ScheduleState`), not in the compiled
step: runs of one shape with different budgets or peak LRs reuse one executable.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lab import mup
from lab.config import ModelConfig, OptimizerConfig
from lab.counting import BLOCKS
from lab.errors import ConfigError

NO_DECAY_MODULES = ("embed", "pos_embed")
# Settings that only shape the schedule's numbers, which live in the optimizer state.
SCHEDULE_FIELDS = frozenset(
    {
        "peak_lr",
        "warmup_steps",
        "final_lr_fraction",
        "schedule",
        "cooldown_fraction",
        "cooldown_shape",
    }
)
# WSD is told apart by a negative half_span (a cosine's is (peak - final) / 2 >= 0), which
# names the cooldown shape: the state keeps the six numbers it had before WSD existed, so
# checkpoints of earlier runs still restore and every step still shares one executable.
WSD_CODES = {"linear": -1.0, "1-sqrt": -2.0}


def warmup_steps(config: OptimizerConfig, total_steps: int) -> int:
    """Warmup length in steps, clamped so the last step is always on the cosine's end (WSD:
    so warmup ends before the cooldown starts)."""
    if config.schedule == "wsd":
        decay_start = total_steps - config.cooldown_steps(total_steps)
        return max(0, min(config.warmup_for(total_steps), decay_start))
    return max(0, min(config.warmup_for(total_steps), total_steps - 2))


class ScheduleState(NamedTuple):
    """The update count and the run's schedule numbers, as arrays in the optimizer state.

    Kept as data, not as constants of the compiled step, so every run of one model shape
    shares one executable whatever its budget or peak LR (a sweep's runs then meet a warm
    compilation cache), and a checkpoint carries the schedule it was trained with.
    """

    count: jax.Array  # int32: updates done
    peak: jax.Array  # f32: peak lr
    final: jax.Array  # f32: lr at the last step
    half_span: jax.Array  # f32: cosine (peak - final) / 2 >= 0; WSD its shape, < 0 (WSD_CODES)
    warmup: jax.Array  # f32: W
    decay_span: jax.Array  # f32: cosine max(S - 1 - W, 1); WSD the cooldown's K (0: a trunk)
    total: jax.Array  # f32: S


def schedule_numbers(config: OptimizerConfig, total_steps: int) -> dict[str, float]:
    """The schedule of a run of `total_steps` updates as plain numbers (see module docstring)."""
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ConfigError(f"total_steps must be a positive int, got {total_steps!r}")
    peak, final = config.peak_lr, config.peak_lr * config.final_lr_fraction
    warm = warmup_steps(config, total_steps)
    wsd = config.schedule == "wsd"
    cooldown = config.cooldown_steps(total_steps)
    return {
        "peak": peak,
        "final": final,
        "half_span": WSD_CODES[config.cooldown_shape] if wsd else (peak - final) * 0.5,
        "warmup": float(warm),
        "decay_span": float(cooldown if wsd else max(total_steps - 1 - warm, 1)),
        "total": float(total_steps),
    }


def schedule_lr(step: Any, numbers: Any) -> jax.Array:
    """lr at update `step` from `schedule_numbers` (floats or the arrays of a ScheduleState)."""
    step = jnp.asarray(step, jnp.float32)
    n = numbers if isinstance(numbers, dict) else numbers._asdict()
    warm_lr = n["peak"] * (step + 1.0) / (n["warmup"] + 1.0)
    progress = jnp.clip((step - n["warmup"]) / n["decay_span"], 0.0, 1.0)
    progress = jnp.where(n["total"] == 1, 1.0, progress)  # a 1-step run trains at the final lr
    cos_lr = n["final"] + n["half_span"] * (1.0 + jnp.cos(jnp.pi * progress))
    decay_start = n["total"] - n["decay_span"]  # WSD: s = S - K
    cool = jnp.clip((step - decay_start + 1.0) / jnp.maximum(n["decay_span"], 1.0), 0.0, 1.0)
    shape = jnp.where(n["half_span"] == WSD_CODES["1-sqrt"], 1.0 - jnp.sqrt(cool), 1.0 - cool)
    cool_lr = n["final"] + (n["peak"] - n["final"]) * shape
    wsd_lr = jnp.where(step < decay_start, n["peak"], cool_lr)
    # cosine runs take cos_lr through the selects unchanged: bitwise what they were
    return jnp.where(step < n["warmup"], warm_lr, jnp.where(n["half_span"] < 0, wsd_lr, cos_lr))


def current_lr(opt_state: Any) -> jax.Array:
    """The (peak-schedule) lr the next update applies, read from the optimizer state, so the
    train step can report the lr it used without the host recomputing it."""
    found = [
        leaf
        for leaf in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, ScheduleState))
        if isinstance(leaf, ScheduleState)
    ]
    if not found:
        raise ValueError("optimizer state has no ScheduleState; build it with make_optimizer")
    return schedule_lr(found[0].count, found[0])


def _f32(numbers: dict[str, Any]) -> dict[str, jax.Array]:
    return {k: jnp.asarray(v, jnp.float32) for k, v in numbers.items()}


def with_schedule(opt_state: Any, numbers: dict[str, Any]) -> Any:
    """`opt_state` with every ScheduleState's numbers replaced by `numbers` (count kept)."""

    def replace(leaf: Any) -> Any:
        return leaf._replace(**_f32(numbers)) if isinstance(leaf, ScheduleState) else leaf

    return jax.tree.map(replace, opt_state, is_leaf=lambda x: isinstance(x, ScheduleState))


def schedule_arrays(config: OptimizerConfig, total_steps: int) -> dict[str, np.float32]:
    """`schedule_numbers` as float32 scalars: the data a jitted init writes into the state."""
    return {k: np.float32(v) for k, v in schedule_numbers(config, total_steps).items()}


def update_signature(config: OptimizerConfig) -> tuple[tuple[str, Any], ...]:
    """The settings compiled into the update: all but SCHEDULE_FIELDS (new fields count by
    default). Two configs with equal signatures can share one jitted train step."""
    return tuple(
        (f.name, getattr(config, f.name))
        for f in dataclasses.fields(config)
        if f.name not in SCHEDULE_FIELDS
    )


def make_schedule(config: OptimizerConfig, total_steps: int) -> optax.Schedule:
    """lr(step) for steps 0..total_steps-1; see the module docstring."""
    return _schedule_of(schedule_numbers(config, total_steps))


def _schedule_of(numbers: dict[str, float]) -> optax.Schedule:
    return lambda step: schedule_lr(step, numbers)


def scale_by_run_schedule(
    numbers: dict[str, float], multiplier: float = 1.0
) -> optax.GradientTransformation:
    """updates * -(lr(count) * multiplier), the schedule's numbers held in the state."""

    def init(params: Any) -> ScheduleState:
        del params
        return ScheduleState(count=jnp.zeros((), jnp.int32), **_f32(numbers))

    def update(updates: Any, state: ScheduleState, params: Any = None) -> tuple:
        del params
        lr = schedule_lr(state.count, state)
        step_size = -(lr * multiplier) if multiplier != 1.0 else -lr
        updates = jax.tree.map(lambda g: jnp.asarray(step_size, g.dtype) * g, updates)
        return updates, state._replace(count=optax.safe_increment(state.count))

    return optax.GradientTransformation(init, update)


def decay_mask(params: Any) -> Any:
    """True for leaves that get weight decay: >= 2-D kernels outside the embedding modules
    (scanned blocks' leaves carry a leading layers axis that does not count)."""

    def decays(path: tuple, leaf: Any) -> bool:
        names = [getattr(k, "key", getattr(k, "name", None)) for k in path]
        ndim = jnp.ndim(leaf) - (1 if names[:1] == [BLOCKS] else 0)
        return ndim >= 2 and not any(n in NO_DECAY_MODULES for n in names)

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
    numbers = schedule_numbers(config, total_steps)

    def adamw_with(multiplier: float) -> optax.GradientTransformation:
        """optax.adamw's chain, its learning rate scaled by the run's schedule state."""
        return optax.chain(
            optax.scale_by_adam(b1=config.b1, b2=config.b2, eps=config.eps),
            optax.add_decayed_weights(config.weight_decay, decay_mask),
            scale_by_run_schedule(numbers, multiplier),
        )

    if model is not None and mup.is_mup(model):
        adamw = optax.multi_transform(
            {"hidden": adamw_with(1.0 / mup.width_ratio(model)), "vector": adamw_with(1.0)},
            mup_labels(model),
        )
    else:
        adamw = adamw_with(1.0)
    schedule = _schedule_of(numbers)
    if config.clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(config.clip_norm), adamw), schedule
    return adamw, schedule
