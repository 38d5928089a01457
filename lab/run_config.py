"""One training run's complete, hashable configuration, and how it is read from TOML.

A run is fully described by this object: the sweep runner writes it to `config.json` in the
run directory, and re-running the same config in the same directory resumes that run. The
`config_hash` (of the canonical JSON) names the run in provenance records.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from lab.config import MeshConfig, ModelConfig, OptimizerConfig
from lab.data import DataConfig
from lab.data.config import tokenizer_vocab
from lab.data.tokenizers import ByteTokenizer
from lab.errors import ConfigError


def default_eval_fractions(count: int = 10, first: float = 0.02) -> tuple[float, ...]:
    """Log-spaced FLOP fractions ending at 1.0: the training-curve points Approach 1 uses."""
    ratio = (1.0 / first) ** (1.0 / (count - 1))
    return (*(round(first * ratio**i, 6) for i in range(count - 1)), 1.0)


@dataclasses.dataclass(frozen=True)
class ScalingRule:
    """value(N) = base * (N / reference_params) ** exponent; exponent 0 keeps `base` for all N.

    Used for the optional size-dependent peak LR (and batch size) of a sweep; the resolved
    value is what the run records, so the rule never hides what was trained.
    """

    reference_params: float = 1e6
    exponent: float = 0.0

    def __post_init__(self) -> None:
        if not self.reference_params > 0 or not math.isfinite(self.exponent):
            raise ConfigError(
                f"lr_rule needs reference_params > 0 and a finite exponent, got {self}"
            )

    def apply(self, base: float, num_params: int) -> float:
        return base * (num_params / self.reference_params) ** self.exponent

    def batch_size(self, base: int, num_params: int, multiple: int = 1) -> int:
        """The rule's batch for a model: rounded to a multiple of `multiple` (>= multiple)."""
        ways = max(1, round(self.apply(base, num_params) / multiple))
        return ways * multiple


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything one training run needs. `num_tokens` is D, the run's token budget."""

    model: ModelConfig
    num_tokens: int
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    mesh: MeshConfig = dataclasses.field(default_factory=MeshConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    batch_size: int = 8
    seed: int = 0
    steps_per_call: int = 1
    eval_fractions: tuple[float, ...] = default_eval_fractions()
    eval_batches: int = 4
    eval_batch_size: int = 32
    checkpoint_every_steps: int = 0  # 0: only by wall time and at preemption
    checkpoint_every_seconds: float = 300.0
    keep_checkpoints: int = 2
    keep_final_checkpoint: bool = True
    divergence_factor: float = 2.0  # loss above factor * ln(vocab) after warmup = diverged
    peak_flops: float = 0.0  # device peak for MFU; 0 = measured (CPU) or datasheet (GPU/TPU)
    lr_rule: ScalingRule | None = None  # optional: peak LR scaled with model size
    batch_rule: ScalingRule | None = None  # optional: batch size scaled with model size
    batch_multiple: int = 8  # the batch rule rounds to this (data-parallel ways)

    @property
    def train_batch_size(self) -> int:
        """The batch this run trains with: `batch_size`, scaled by `batch_rule` if set."""
        if self.batch_rule is None:
            return self.batch_size
        return self.batch_rule.batch_size(
            self.batch_size, self.model.num_params(), self.batch_multiple
        )

    @property
    def peak_lr(self) -> float:
        """The peak LR this run trains with: `optimizer.peak_lr`, scaled by `lr_rule` if set."""
        base = self.optimizer.peak_lr
        return self.lr_rule.apply(base, self.model.num_params()) if self.lr_rule else base

    def effective_optimizer(self) -> OptimizerConfig:
        return dataclasses.replace(self.optimizer, peak_lr=self.peak_lr)

    def __post_init__(self) -> None:
        for name in (
            "num_tokens",
            "batch_size",
            "steps_per_call",
            "eval_batches",
            "batch_multiple",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        tokens_per_step = self.tokens_per_step
        if self.num_tokens % tokens_per_step:
            lower = self.num_tokens // tokens_per_step * tokens_per_step
            raise ConfigError(
                f"num_tokens={self.num_tokens} is not a whole number of steps of "
                f"batch*ctx = {tokens_per_step} tokens; use {lower or tokens_per_step} "
                f"or {lower + tokens_per_step}"
            )
        fractions = self.eval_fractions
        if (
            not fractions
            or any(not 0 < f <= 1 for f in fractions)
            or list(fractions) != sorted(fractions)
        ):
            raise ConfigError(
                f"eval_fractions must be increasing numbers in (0, 1], got {list(fractions)}"
            )
        if self.keep_checkpoints < 1:
            raise ConfigError(f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        if not math.isfinite(self.divergence_factor) or self.divergence_factor <= 1:
            raise ConfigError(f"divergence_factor must be > 1, got {self.divergence_factor}")

    @property
    def tokens_per_step(self) -> int:
        return self.train_batch_size * self.model.ctx

    @property
    def num_steps(self) -> int:
        return self.num_tokens // self.tokens_per_step

    def eval_steps(self) -> list[int]:
        """Steps (1-based counts of steps done) at which held-out loss is measured.

        FLOPs per step are constant, so a FLOP fraction is a step fraction; duplicates from
        rounding on short runs are merged, and the last step is always included.
        """
        steps = {max(1, round(f * self.num_steps)) for f in self.eval_fractions}
        steps.add(self.num_steps)
        return sorted(steps)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["optimizer"] = self.optimizer.to_dict()  # cosine configs hash as before WSD
        out["eval_fractions"] = list(self.eval_fractions)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown run config key(s) {unknown}; valid keys: {sorted(known)}")
        if "model" not in data or "num_tokens" not in data:
            raise ConfigError("a run config needs a [model] table and num_tokens (D)")
        data["optimizer"] = OptimizerConfig.from_dict(data.get("optimizer", {}))
        data["mesh"] = MeshConfig.from_dict(data.get("mesh", {}))
        data["data"] = DataConfig.from_dict(data.get("data", {}))
        data["model"] = _model_from(_with_tokenizer_vocab(data["model"], data["data"]))
        for rule in ("lr_rule", "batch_rule"):
            if data.get(rule) is not None and not isinstance(data[rule], ScalingRule):
                data[rule] = ScalingRule(**data[rule])
        if "eval_fractions" in data:
            data["eval_fractions"] = tuple(float(f) for f in data["eval_fractions"])
        if isinstance(data["num_tokens"], float) and data["num_tokens"].is_integer():
            data["num_tokens"] = int(data["num_tokens"])
        return cls(**data)

    def config_hash(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _with_tokenizer_vocab(table: Any, data: DataConfig) -> Any:
    """A [model] table without vocab_size gets the tokenizer's, when ModelConfig's default
    is too small for it (the byte tokenizer's 259 ids, a SentencePiece vocabulary), so
    `[model] params = 3e5` alone trains. Configs that trained before keep their hash."""
    if not isinstance(table, Mapping) or "vocab_size" in table or data.corpus == "synthetic":
        return table
    requested = tokenizer_vocab(data.tokenizer)
    needed = ByteTokenizer.vocab_size if requested is None else requested
    default = ModelConfig.__dataclass_fields__["vocab_size"].default
    return {**table, "vocab_size": needed} if needed > default else table


def _model_from(table: Mapping[str, Any] | ModelConfig) -> ModelConfig:
    """A [model] table: explicit shape, or `params = 3e5` (shape rule), or `preset = "1m"`."""
    if isinstance(table, ModelConfig):
        return table
    table = dict(table)
    from lab import presets

    rest = {k: v for k, v in table.items() if k not in ("preset", "params")}
    if set(rest) - {f.name for f in dataclasses.fields(ModelConfig)}:
        ModelConfig.from_dict(rest)  # raises its "unknown ModelConfig key(s)" error

    if "preset" in table:
        base = presets.preset(table.pop("preset")).to_dict()
        return ModelConfig.from_dict({**base, **table})
    if "params" in table:
        target = table.pop("params")
        return presets.model_for_params(float(target), **table)
    return ModelConfig.from_dict(table)


def parse_override(text: str) -> tuple[list[str], Any]:
    """`model.d_model=64` -> (["model", "d_model"], 64); values parse as TOML, else strings."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value (e.g. optimizer.peak_lr=1e-3), got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip().split("."), value


def apply_overrides(table: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of a nested config table with each `a.b.c=value` override applied."""
    result = json.loads(json.dumps(table))
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: {part!r} is not a table")
        node[path[-1]] = value
    return result


def load_run_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Read a run config from TOML (or the JSON a run directory holds), with `--set` overrides."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        table = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"cannot parse {path}: {error}") from None
    return RunConfig.from_dict(apply_overrides(table, overrides))
