"""The sweep file: budgets, a size ladder, a FLOP convention and the template of every run.

A sweep file is TOML with a `[sweep]` table (budgets, sizes, seeds, limits) and the run
template: `[run]` (batch_size, steps_per_call, eval settings, checkpointing), `[model]`
(everything but the shape, which the ladder chooses), `[optimizer]`, `[data]`, `[mesh]`.
See `experiments/configs/cpu_tiny.toml` for a commented example. Every mistake is a
`SweepError` naming the key and the fix; nothing here imports JAX.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from experiments.packing_spec import PackingSpec, parse_packing
from experiments.resources import ResourceSpec, parse_resources
from experiments.tuning_spec import TuningSpec, parse_tuning
from lab.config import MeshConfig, ModelConfig, OptimizerConfig
from lab.errors import ConfigError
from lab.units import pf_days_to_flops

CONVENTIONS = {"6N": "6N", "6N_nonemb": "6N_nonemb", "detailed": "causal"}
SHAPE_KEYS = ("n_layers", "d_model", "n_heads", "d_ff")
RUN_KEYS = (
    "batch_size",
    "steps_per_call",
    "eval_fractions",
    "eval_batches",
    "eval_batch_size",
    "checkpoint_every_steps",
    "checkpoint_every_seconds",
    "keep_checkpoints",
    "keep_final_checkpoint",
    "divergence_factor",
    "peak_flops",
    "lr_rule",
    "batch_rule",
    "batch_multiple",
)
SWEEP_KEYS = (
    "name",
    "description",
    "budgets_flops",
    "budgets_pf_days",
    "flop_convention",
    "sizes_per_budget",
    "spacing",
    "tokens_per_param_guess",
    "min_params",
    "max_params",
    "params",
    "d_models",
    "seeds",
    "extra_seeds_near_minimum",
    "extra_seeds",
    "min_steps",
    "max_epochs",
    "expected_minutes",
    "strategy",
)
STRATEGIES = ("independent", "branching")


class SweepError(ConfigError):
    """The sweep file is invalid; the message names the key and the fix."""


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file. `template` holds the run tables (model without shape)."""

    name: str
    budgets: tuple[float, ...]
    flop_convention: str  # "6N", "6N_nonemb" or "detailed"
    sizes_per_budget: int
    spacing: float
    tokens_per_param_guess: float
    min_params: float
    max_params: float
    params: tuple[float, ...] | None  # explicit targets (same for every budget)
    d_models: tuple[int, ...] | None  # explicit widths of the shape rule
    seeds: tuple[int, ...]
    extra_seeds_near_minimum: int
    extra_seeds: tuple[int, ...]
    min_steps: int
    max_epochs: float
    template: dict[str, Any]
    description: str = ""
    expected_minutes: float | None = None
    # "branching": one constant-LR trunk per size, each point a WSD cooldown branch of it
    # (experiments.branching); "independent": one run per point
    strategy: str = "independent"
    tuning: TuningSpec | None = None  # [tuning]: per-size LR sweep before the main runs
    # [resources]: what a run asks Ray for; not part of the sweep's identity (results do
    # not depend on it), so a restarted sweep may ask for other resources
    resources: ResourceSpec = dataclasses.field(default=ResourceSpec(), compare=False)
    # [packing]: grouping and devices per run (experiments.grouping); not identity either
    packing: PackingSpec = dataclasses.field(default=PackingSpec(), compare=False)

    @property
    def counting_convention(self) -> str:
        """The `lab.counting` name of the convention that solves D."""
        return CONVENTIONS[self.flop_convention]

    def center_params(self, budget: float) -> float:
        """Guess of N_opt: C = 6 N D with D = k N gives N = sqrt(C / (6 k))."""
        return math.sqrt(budget / (6.0 * self.tokens_per_param_guess))

    def to_table(self) -> dict[str, Any]:
        """The canonical TOML-like table (what `sweep.toml` in a results dir describes)."""
        sweep = {
            "name": self.name,
            "budgets_flops": list(self.budgets),
            "flop_convention": self.flop_convention,
            "seeds": list(self.seeds),
            "min_steps": self.min_steps,
            "max_epochs": self.max_epochs,
        }
        return {"sweep": sweep, **self.template}


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; a bare name looks in experiments/configs/."""
    path = resolve_sweep_path(path)
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise SweepError(f"cannot parse sweep file {path}: {error}") from None
    return parse_sweep(table, default_name=path.stem)


def resolve_sweep_path(path: str | Path) -> Path:
    """`cpu_tiny` or `cpu_tiny.toml` -> the shipped preset; otherwise the path itself."""
    candidate = Path(path)
    if candidate.exists():
        return candidate
    shipped = Path(__file__).parent / "configs" / f"{Path(str(path)).stem}.toml"
    if shipped.exists() and candidate.parent == Path("."):
        return shipped
    presets = sorted(p.stem for p in (Path(__file__).parent / "configs").glob("*.toml"))
    raise SweepError(
        f"sweep file {path} does not exist; give a path or one of the presets: {', '.join(presets)}"
    )


def parse_sweep(table: Mapping[str, Any], default_name: str = "sweep") -> SweepSpec:
    """Validate a parsed sweep table into a `SweepSpec`."""
    tables = {"sweep", "run", "model", "optimizer", "data", "mesh", "tuning", "resources"}
    tables.add("packing")
    unknown = sorted(set(table) - tables)
    if unknown:
        raise SweepError(
            f"unknown table(s) {unknown} in the sweep file; use [sweep], [run], [model], "
            "[optimizer], [data], [mesh], [tuning], [resources], [packing]"
        )
    sweep = dict(_table(table, "sweep"))
    bad = sorted(set(sweep) - set(SWEEP_KEYS))
    if bad:
        raise SweepError(f"unknown [sweep] key(s) {bad}; valid keys: {', '.join(SWEEP_KEYS)}")
    spacing = _number(sweep, "spacing", 1.8)
    if spacing <= 1.0:
        raise SweepError(
            f"[sweep] spacing must be > 1 (ratio of neighbouring sizes), got {spacing}"
        )
    tokens_per_param = _number(sweep, "tokens_per_param_guess", 60.0)
    if tokens_per_param <= 0:
        raise SweepError("[sweep] tokens_per_param_guess must be > 0 (e.g. 20 or 60)")
    convention = sweep.get("flop_convention", "6N")
    if convention not in CONVENTIONS:
        raise SweepError(
            f"[sweep] flop_convention {convention!r} is unknown; use one of {', '.join(CONVENTIONS)}"
        )
    min_params = _number(sweep, "min_params", 0.0)
    max_params = _number(sweep, "max_params", math.inf)
    if min_params >= max_params:
        raise SweepError(f"[sweep] min_params={min_params} must be below max_params={max_params}")
    seeds = _int_list(sweep, "seeds", [0])
    extra = _int(sweep, "extra_seeds_near_minimum", 0, minimum=0)
    extra_seeds = _int_list(sweep, "extra_seeds", [max(seeds) + 1])
    if set(extra_seeds) & set(seeds):
        raise SweepError(f"[sweep] extra_seeds {extra_seeds} repeat a seed of seeds {seeds}")
    max_epochs = _number(sweep, "max_epochs", 1.0)
    if max_epochs <= 0:
        raise SweepError(f"[sweep] max_epochs must be > 0, got {max_epochs}")
    params = _optional_list(sweep, "params", float)
    d_models = _optional_list(sweep, "d_models", int)
    if params is not None and d_models is not None:
        raise SweepError("[sweep] give either params or d_models (explicit sizes), not both")
    expected = sweep.get("expected_minutes")
    strategy = sweep.get("strategy", "independent")
    if strategy not in STRATEGIES:
        raise SweepError(
            f"[sweep] strategy {strategy!r} is unknown; use one of {', '.join(STRATEGIES)}"
        )
    template = _template(table, max_epochs)
    if strategy == "branching":
        _check_branching(template["optimizer"])
    return SweepSpec(
        name=str(sweep.get("name", default_name)),
        budgets=_budgets(sweep),
        flop_convention=convention,
        sizes_per_budget=_int(sweep, "sizes_per_budget", 5),
        spacing=spacing,
        tokens_per_param_guess=tokens_per_param,
        min_params=min_params,
        max_params=max_params,
        params=params,
        d_models=d_models,
        seeds=tuple(seeds),
        extra_seeds_near_minimum=extra,
        extra_seeds=tuple(extra_seeds),
        min_steps=_int(sweep, "min_steps", 100),
        max_epochs=max_epochs,
        template=template,
        description=str(sweep.get("description", "")),
        expected_minutes=float(expected) if expected is not None else None,
        strategy=strategy,
        tuning=parse_tuning(table["tuning"]) if "tuning" in table else None,
        resources=parse_resources(table.get("resources")),
        packing=parse_packing(table.get("packing")),
    )


def _check_branching(optimizer: Mapping[str, Any]) -> None:
    """Branches are cooldowns of a constant-LR trunk: the schedule must be WSD with one."""
    config = OptimizerConfig.from_dict(optimizer)
    if config.schedule != "wsd" or config.cooldown_fraction <= 0:
        raise SweepError(
            'strategy = "branching" needs a WSD schedule with a cooldown: set [optimizer] '
            'schedule = "wsd" and cooldown_fraction = 0.2 (for example)'
        )


def _budgets(sweep: dict[str, Any]) -> tuple[float, ...]:
    has_flops, has_days = "budgets_flops" in sweep, "budgets_pf_days" in sweep
    if has_flops == has_days:
        raise SweepError(
            "[sweep] needs exactly one of budgets_flops = [1e12, 3e12, ...] or "
            "budgets_pf_days = [1e-8, ...]"
        )
    key = "budgets_flops" if has_flops else "budgets_pf_days"
    values = _optional_list(sweep, key, float) or []
    if not values or any(not (v > 0 and math.isfinite(v)) for v in values):
        raise SweepError(
            f"[sweep] {key} must be a non-empty list of positive numbers, got {values}"
        )
    flops = [v if has_flops else pf_days_to_flops(v) for v in values]
    if len(set(flops)) != len(flops):
        raise SweepError(f"[sweep] {key} repeats a budget: {values}")
    return tuple(sorted(flops))


def _template(table: Mapping[str, Any], max_epochs: float) -> dict[str, Any]:
    """The run tables, checked key by key against the lab's configs (shape left to the ladder)."""
    run = dict(_table(table, "run"))
    for key in ("seed", "num_tokens"):
        if key in run:
            raise SweepError(f"[run] {key} is set by the sweep (seeds, budgets); remove it")
    bad = sorted(set(run) - set(RUN_KEYS))
    if bad:
        raise SweepError(f"unknown [run] key(s) {bad}; valid keys: {', '.join(RUN_KEYS)}")
    model = dict(_table(table, "model"))
    shape = sorted(set(model) & {*SHAPE_KEYS, "params", "preset"})
    if shape:
        raise SweepError(
            f"[model] {shape}: the size ladder chooses the shape; set sizes in [sweep] "
            "(sizes_per_budget, spacing, params or d_models) instead"
        )
    _check_fields(ModelConfig, model, "model", skip=SHAPE_KEYS, extra={"vocab_size"})
    optimizer = dict(_table(table, "optimizer"))
    mesh = dict(_table(table, "mesh"))
    data = dict(_table(table, "data"))
    if "max_epochs" in data:
        raise SweepError("set max_epochs in [sweep] (it also drops points), not in [data]")
    try:
        OptimizerConfig.from_dict(optimizer)
        MeshConfig.from_dict(mesh)
        ModelConfig(n_layers=1, d_model=32, n_heads=2, d_ff=128, **model)
        from lab.data.config import DataConfig

        DataConfig.from_dict({**data, "max_epochs": max_epochs})
    except ConfigError as error:
        raise SweepError(f"sweep run template: {error}") from None
    batch = run.get("batch_size", 8)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise SweepError(f"[run] batch_size must be a positive integer, got {batch!r}")
    return {
        "run": run,
        "model": model,
        "optimizer": optimizer,
        "mesh": mesh,
        "data": {**data, "max_epochs": max_epochs},
    }


def _check_fields(cls: type, table: dict[str, Any], name: str, skip: tuple, extra: set) -> None:
    known = {f.name for f in dataclasses.fields(cls)} - set(skip)
    bad = sorted(set(table) - known - extra)
    if bad:
        raise SweepError(f"unknown [{name}] key(s) {bad}; valid keys: {', '.join(sorted(known))}")


def _table(table: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = table.get(name, {})
    if not isinstance(value, Mapping):
        raise SweepError(f"[{name}] must be a table, got {type(value).__name__}")
    return value


def _number(table: dict[str, Any], key: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise SweepError(f"[sweep] {key} must be a number, got {value!r}")
    return float(value)


def _int(table: dict[str, Any], key: str, default: int, minimum: int = 1) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SweepError(f"[sweep] {key} must be an integer >= {minimum}, got {value!r}")
    return value


def _int_list(table: dict[str, Any], key: str, default: list[int]) -> list[int]:
    values = table.get(key, default)
    if (
        not isinstance(values, list)
        or not values
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values)
        or len(set(values)) != len(values)
    ):
        raise SweepError(
            f"[sweep] {key} must be a list of distinct non-negative integers, got {values!r}"
        )
    return values


def _optional_list(table: dict[str, Any], key: str, kind: type) -> tuple | None:
    if key not in table:
        return None
    values = table[key]
    if not isinstance(values, list) or not values:
        raise SweepError(f"[sweep] {key} must be a non-empty list, got {values!r}")
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise SweepError(f"[sweep] {key} must hold positive numbers, got {value!r}")
        if kind is int and not float(value).is_integer():
            raise SweepError(f"[sweep] {key} must hold integers, got {value!r}")
        out.append(kind(value))
    return tuple(out)
