"""Validated, frozen configuration of the model, the optimizer and the device mesh.

Plain dataclasses (no JAX import) so the sweep solver, the CLI and the analysis side can build
and check configs cheaply. Every bad value raises `lab.errors.ConfigError` in `__post_init__`
with the problem and the fix; `from_dict` rejects unknown or missing keys the same way.
Counting (parameters, FLOPs) lives in `lab.counting`; the config only exposes it, so the sweep
solver and the MFU meter share one formula (Levanter style).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Self

from lab import counting
from lab.errors import ConfigError

POSITIONS = ("rope", "learned")
MLPS = ("gelu", "swiglu")
COMPUTE_DTYPES = ("float32", "bfloat16")
FLOP_CONVENTIONS = ("6N", "6N_nonemb", "causal", "full")
PARAMETERIZATIONS = ("sp", "mup")
SCHEDULES = ("cosine", "wsd")
COOLDOWN_SHAPES = ("linear", "1-sqrt")
# The WSD settings: left out of OptimizerConfig.to_dict at their defaults, so the hashes (and
# run ids) of cosine runs stay what they were before the fields existed.
SCHEDULE_KIND_FIELDS = ("schedule", "cooldown_fraction", "cooldown_shape")
REMAT_POLICIES = ("none", "full", "save-dots")
MESH_AXES = ("data", "fsdp", "tensor")  # the one definition; lab.sharding uses it
# How the step computes, not what: left out of ModelConfig.to_dict at their defaults.
MEMORY_FIELDS = ("scan_layers", "remat", "microbatches")


def _check_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}; write e.g. {name} = 4")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")


def _check_float(name: str, value: Any, low: float, high: float, *, open_low: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if value < low or value > high or (open_low and value == low):
        bracket = "(" if open_low else "["
        raise ConfigError(f"{name} must be in {bracket}{low}, {high}], got {value}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


class _DictMixin:
    """to_dict/from_dict for flat frozen dataclasses, strict about keys."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: typing.Mapping[str, Any]) -> Self:
        if not isinstance(data, typing.Mapping):
            raise ConfigError(f"{cls.__name__} needs a table/dict, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(
                f"unknown {cls.__name__} key(s) {unknown}; valid keys are {sorted(fields)}"
            )
        missing = [
            name
            for name, f in fields.items()
            if name not in data
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ConfigError(f"{cls.__name__} is missing required key(s) {missing}")
        return cls(**dict(data))


@dataclasses.dataclass(frozen=True)
class ModelConfig(_DictMixin):
    """Shape of a decoder-only pre-norm transformer (no biases, RMSNorm scales only).

    head_dim = d_model // n_heads. Params are always fp32; `compute_dtype` sets the matmul
    dtype; logits and loss are fp32.

    parameterization: "sp" (standard) or "mup" (Yang et al. 2022, Tensor Programs V: widths
    relative to `mup_base_width`; see `lab.mup`). The muP keys are left out of `to_dict` under
    "sp", so standard configs hash exactly as before they existed.

    Memory features (same function, less memory; `lab.memory` counts each):
    - scan_layers: the blocks run under `nn.scan`, parameters stacked on a leading `layers`
      axis (paths "blocks/..."), so compile time does not grow with depth;
    - remat: "none", "full" (recompute each block in the backward pass:
      `jax.checkpoint_policies.nothing_saveable`) or "save-dots" (keep the weight matmuls'
      outputs, recompute the rest: `dots_with_no_batch_dims_saveable`; `dots_saveable` would
      also keep the [B, H, T, T] attention scores, the largest activation);
    - microbatches: k > 1 accumulates gradients over k slices of the batch inside the jitted
      step, so the global batch does not depend on what fits (batch % (k x data x fsdp) == 0).
    Left out of `to_dict` at their defaults, so older configs hash as before.
    """

    n_layers: int
    d_model: int
    n_heads: int
    d_ff: int
    vocab_size: int = 256
    ctx: int = 128
    position: str = "rope"
    mlp: str = "gelu"
    tied_embeddings: bool = True
    compute_dtype: str = "float32"
    parameterization: str = "sp"
    mup_base_width: int = 32
    scan_layers: bool = False
    remat: str = "none"
    microbatches: int = 1

    def __post_init__(self) -> None:
        for name in ("n_layers", "d_model", "n_heads", "d_ff", "ctx"):
            _check_int(name, getattr(self, name))
        _check_int("vocab_size", self.vocab_size, minimum=2)
        if self.d_model % self.n_heads:
            divisors = [h for h in range(1, self.d_model + 1) if self.d_model % h == 0]
            near = sorted(divisors, key=lambda h: abs(h - self.n_heads))[:3]
            raise ConfigError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                f"use n_heads in {sorted(near)} or change d_model"
            )
        _check_choice("position", self.position, POSITIONS)
        _check_choice("mlp", self.mlp, MLPS)
        _check_choice("compute_dtype", self.compute_dtype, COMPUTE_DTYPES)
        if self.position == "rope" and self.head_dim % 2:
            raise ConfigError(
                f"rope needs an even head_dim, got d_model/n_heads = {self.head_dim}; "
                "change n_heads or d_model, or use position='learned'"
            )
        if not isinstance(self.tied_embeddings, bool):
            raise ConfigError(
                f"tied_embeddings must be true or false, got {self.tied_embeddings!r}"
            )
        _check_choice("parameterization", self.parameterization, PARAMETERIZATIONS)
        _check_int("mup_base_width", self.mup_base_width)
        if not isinstance(self.scan_layers, bool):
            raise ConfigError(f"scan_layers must be true or false, got {self.scan_layers!r}")
        _check_choice("remat", self.remat, REMAT_POLICIES)
        _check_int("microbatches", self.microbatches)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if self.parameterization == "sp" and self.mup_base_width == 32:
            del out["parameterization"], out["mup_base_width"]  # hashes of SP configs unchanged
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name in MEMORY_FIELDS:
            if out[name] == defaults[name]:
                del out[name]
        return out

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def num_params(self) -> int:
        """Total parameters (Chinchilla's convention), exact."""
        return counting.num_params(self)

    def num_nonembedding_params(self) -> int:
        """Parameters without token/position embeddings and untied unembedding (Kaplan's)."""
        return counting.num_nonembedding_params(self)

    def flops_per_token(self, convention: str = "causal") -> float:
        """Training FLOPs per token (forward + backward = 3x forward); see `lab.counting`."""
        return counting.flops_per_token(self, convention)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig(_DictMixin):
    """AdamW with global-norm clipping; linear warmup then cosine to final_lr_fraction*peak,
    or (schedule = "wsd") warmup, a constant peak, and a cooldown over the last
    cooldown_fraction of the steps to final_lr_fraction*peak (Hagele et al. 2024).

    warmup_steps: an int is a number of steps; a float in [0, 1) is a fraction of the run.
    clip_norm = 0 disables clipping. cooldown_fraction = 0 under "wsd" never cools down:
    the constant-LR trunk that cooldown branches start from.
    """

    peak_lr: float = 3e-3
    warmup_steps: int | float = 0.02
    weight_decay: float = 0.1
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    clip_norm: float = 1.0
    final_lr_fraction: float = 0.1
    schedule: str = "cosine"
    cooldown_fraction: float = 0.2
    cooldown_shape: str = "1-sqrt"

    def __post_init__(self) -> None:
        _check_float("peak_lr", self.peak_lr, 0.0, 10.0, open_low=True)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("cooldown_shape", self.cooldown_shape, COOLDOWN_SHAPES)
        if isinstance(self.cooldown_fraction, bool) or not (
            isinstance(self.cooldown_fraction, int | float) and 0 <= self.cooldown_fraction < 1
        ):
            raise ConfigError(
                f"cooldown_fraction must be in [0, 1) (0.1-0.2 is usual), got "
                f"{self.cooldown_fraction!r}"
            )
        w = self.warmup_steps
        if isinstance(w, bool) or not isinstance(w, int | float):
            raise ConfigError(f"warmup_steps must be an int (steps) or a fraction, got {w!r}")
        if isinstance(w, int) and w < 0:
            raise ConfigError(f"warmup_steps must be >= 0 steps, got {w}")
        if isinstance(w, float) and not 0.0 <= w < 1.0:
            raise ConfigError(
                f"warmup_steps={w} as a float is a fraction of the run and must be in [0, 1); "
                "write an int for a number of steps"
            )
        _check_float("weight_decay", self.weight_decay, 0.0, 10.0)
        _check_float("b1", self.b1, 0.0, 0.999999)
        _check_float("b2", self.b2, 0.0, 0.999999999)
        _check_float("eps", self.eps, 0.0, 1.0, open_low=True)
        _check_float("clip_norm", self.clip_norm, 0.0, math.inf)
        _check_float("final_lr_fraction", self.final_lr_fraction, 0.0, 1.0)

    def warmup_for(self, total_steps: int) -> int:
        """Warmup length in steps for a run of `total_steps`, never past the last step."""
        w = self.warmup_steps
        steps = round(w * total_steps) if isinstance(w, float) else w
        return max(0, min(int(steps), total_steps - 1))

    def cooldown_steps(self, total_steps: int) -> int:
        """WSD: steps in the cooldown (0 for a trunk, else 1..total_steps); 0 under cosine."""
        if self.schedule != "wsd" or self.cooldown_fraction == 0:
            return 0
        return min(total_steps, max(1, round(self.cooldown_fraction * total_steps)))

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name in SCHEDULE_KIND_FIELDS:
            if out[name] == defaults[name]:
                del out[name]
        return out


@dataclasses.dataclass(frozen=True)
class MeshConfig(_DictMixin):
    """Device mesh shape over axes (data, fsdp, tensor); at most one size may be -1 (the rest).

    `slices` > 1 lays the mesh over several TPU slices joined by the data-centre network
    (DCN): the data axis is split across slices (a hybrid mesh), so only the gradient
    all-reduce crosses the slower network; fsdp and tensor stay inside a slice's ICI.
    """

    data: int = -1
    fsdp: int = 1
    tensor: int = 1
    slices: int = 1

    def __post_init__(self) -> None:
        _check_int("mesh slices", self.slices)
        sizes = self.shape_spec
        for name, size in zip(MESH_AXES, sizes, strict=True):
            if isinstance(size, bool) or not isinstance(size, int) or (size < 1 and size != -1):
                raise ConfigError(f"mesh {name} must be a positive int or -1, got {size!r}")
        if sizes.count(-1) > 1:
            raise ConfigError(
                f"mesh {sizes}: only one axis may be -1 (the rest of the devices); fix the others"
            )

    @property
    def shape_spec(self) -> tuple[int, int, int]:
        return (self.data, self.fsdp, self.tensor)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if self.slices == 1:
            del out["slices"]  # single-slice configs hash as before the field existed
        return out

    @classmethod
    def from_spec(cls, spec: str | typing.Sequence[int] | MeshConfig) -> MeshConfig:
        """From "2,2,2", (2, 2, 2) or a MeshConfig."""
        if isinstance(spec, MeshConfig):
            return spec
        if isinstance(spec, str):
            try:
                spec = [int(part) for part in spec.split(",")]
            except ValueError as error:
                raise ConfigError(
                    f"mesh {spec!r}: write three integers data,fsdp,tensor, e.g. 4,2,1"
                ) from error
        if len(spec) != 3:
            raise ConfigError(f"mesh {tuple(spec)} needs three sizes (data, fsdp, tensor)")
        return cls(*spec)

    def resolve(self, num_devices: int) -> tuple[int, int, int]:
        """Concrete (data, fsdp, tensor) for `num_devices`; ConfigError if it cannot match."""
        _check_int("num_devices", num_devices)
        sizes = list(self.shape_spec)
        if -1 in sizes:
            fixed = math.prod(s for s in sizes if s != -1)
            if num_devices % fixed:
                raise ConfigError(
                    f"mesh {tuple(sizes)}: the fixed axes use {fixed} devices, which does not "
                    f"divide the {num_devices} available; pick sizes whose product divides "
                    f"{num_devices}"
                )
            sizes[sizes.index(-1)] = num_devices // fixed
        if math.prod(sizes) != num_devices:
            raise ConfigError(
                f"mesh {tuple(sizes)} has {math.prod(sizes)} devices but {num_devices} are "
                "available; make the product equal the device count or set one axis to -1"
            )
        return (sizes[0], sizes[1], sizes[2])
