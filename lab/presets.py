"""Model shapes from a parameter target: one shape rule, so a sweep can ask for "about 3e5".

The rule (documented so sizes in a sweep are comparable):
- aspect ratio d_model / n_layers = 64 (GPT-3 Small 768/12, Pythia-160M 768/12; Kaplan et al.
  2020 Fig. 5 find loss flat within ~1% for ratios ~20-200, so one fixed ratio is safe);
  n_layers = max(1, round(d_model / 64));
- head_dim 64 from d_model 256 up, 32 from 128, else 16 (so the smallest models still have a
  few heads), and d_model a multiple of its head_dim;
- d_ff = 4 d_model (GELU) or 8/3 d_model rounded up to a multiple of 16 (SwiGLU, Shazeer 2020,
  keeps the MLP's parameter count equal to the GELU one).
Candidates d_model = 16, 32, ..., 8192 are scored by |log N - log target| with the exact count
(`ModelConfig.num_params`, so embeddings, vocab and mlp type are accounted for), and the
closest wins: ~2e4 params at d_model 32 (1 layer), ~1.2e9 at d_model 2048 (32 layers).
"""

from __future__ import annotations

import math
from typing import Any

from lab.config import ModelConfig
from lab.errors import ConfigError

ASPECT_RATIO = 64
WIDTH_STEP = 16
MAX_WIDTH = 8192
SHAPE_FIELDS = ("n_layers", "d_model", "n_heads", "d_ff")

PRESET_TARGETS: dict[str, float] = {
    "tiny": 2e4,
    "100k": 1e5,
    "300k": 3e5,
    "1m": 1e6,
    "3m": 3e6,
    "10m": 1e7,
    "30m": 3e7,
    "100m": 1e8,
    "300m": 3e8,
    "1b": 1e9,
}


def head_dim_for(d_model: int) -> int:
    """Head width of the shape rule."""
    if d_model >= 256:
        return 64
    return 32 if d_model >= 128 else 16


def d_ff_for(d_model: int, mlp: str) -> int:
    """MLP width of the shape rule (equal MLP parameters for GELU and SwiGLU)."""
    if mlp == "swiglu":
        return WIDTH_STEP * math.ceil(8 * d_model / 3 / WIDTH_STEP)
    return 4 * d_model


def shape_for_width(d_model: int, *, vocab_size: int = 256, ctx: int = 128, **overrides: Any):
    """The rule's ModelConfig at a given d_model (a multiple of `head_dim_for(d_model)`)."""
    _check_overrides(overrides)
    mlp = overrides.get("mlp", "gelu")
    return ModelConfig(
        n_layers=max(1, round(d_model / ASPECT_RATIO)),
        d_model=d_model,
        n_heads=d_model // head_dim_for(d_model),
        d_ff=d_ff_for(d_model, mlp),
        vocab_size=vocab_size,
        ctx=ctx,
        **overrides,
    )


def model_for_params(
    target_params: float, *, vocab_size: int = 256, ctx: int = 128, **overrides: Any
) -> ModelConfig:
    """The rule's shape whose total parameter count is closest (in log) to `target_params`."""
    if not isinstance(target_params, int | float) or not target_params > 0:
        raise ConfigError(f"target_params must be a positive number, got {target_params!r}")
    _check_overrides(overrides)
    best, best_error = None, math.inf
    for d_model in range(WIDTH_STEP, MAX_WIDTH + 1, WIDTH_STEP):
        if d_model % head_dim_for(d_model):
            continue
        config = shape_for_width(d_model, vocab_size=vocab_size, ctx=ctx, **overrides)
        error = abs(math.log(config.num_params() / target_params))
        if error < best_error:
            best, best_error = config, error
        elif config.num_params() > target_params:
            break
    assert best is not None
    return best


def preset(name: str, **overrides: Any) -> ModelConfig:
    """A named preset ("tiny", "1m", "10m", "125m", ...), built by the shape rule.

    "125m" and "350m" are GPT-3 Small's and Medium's shapes (Brown et al. 2020, Table 2.1:
    d_model 768 x 12 layers x 12 heads, and 1024 x 24 x 16; ctx 1024 here), which have
    ~85M and ~300M parameters with the lab's byte vocabulary (125M and 350M with GPT-2's
    50,257 tokens: pass vocab_size).
    """
    key = name.lower()
    if key in GPT3_SHAPES:
        layers, width, heads = GPT3_SHAPES[key]
        fields: dict[str, Any] = {"ctx": 1024, **overrides}
        mlp = fields.pop("mlp", "gelu")
        return ModelConfig(
            n_layers=layers,
            d_model=width,
            n_heads=heads,
            d_ff=d_ff_for(width, mlp),
            mlp=mlp,
            **fields,
        )
    if key not in PRESET_TARGETS:
        raise ConfigError(
            f"unknown preset {name!r}; choose one of {', '.join(preset_names())} "
            "or give a parameter count (model_for_params)"
        )
    return model_for_params(PRESET_TARGETS[key], **overrides)


GPT3_SHAPES = {"125m": (12, 768, 12), "350m": (24, 1024, 16)}  # layers, d_model, heads


def preset_names() -> list[str]:
    return [*PRESET_TARGETS, *GPT3_SHAPES]


def _check_overrides(overrides: dict[str, Any]) -> None:
    bad = sorted(set(overrides) & set(SHAPE_FIELDS))
    if bad:
        raise ConfigError(
            f"model_for_params chooses {bad} by the shape rule; build a ModelConfig directly "
            "to set them yourself"
        )
