"""The grid solver: for each (budget, size) the tokens and steps that spend the budget.

D = budget / flops_per_token(convention), rounded to the nearest whole number of batches
(batch_size * ctx tokens), so the budget actually spent is within half a batch of the target
and is recorded. Points that cannot be run as asked are dropped with the reason listed:
too few steps, too many epochs over the corpus, over device memory, or a duplicate of a
neighbouring size after the shape rule rounded it. No JAX here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from experiments.sweep_file import SweepSpec
from lab import presets
from lab.config import ModelConfig
from lab.run_config import RunConfig, ScalingRule

MemoryCheck = Callable[[ModelConfig, int], str | None]


@dataclasses.dataclass(frozen=True)
class GridPoint:
    """One run of the sweep: its config and the budget it spends."""

    run_id: str
    budget: float
    seed: int
    extra_seed: bool
    target_params: float
    config: RunConfig
    flops_per_token: float  # in the sweep's convention
    budget_spent: float  # D * flops_per_token
    epochs: float | None  # D / unique train tokens of the corpus
    tuning: bool = False  # an LR-tuning run (experiments.tuning), not part of the study
    lr_policy: str = "fixed"  # "fixed", "lr_rule", "tuned", "mup" (or "tuning" for tuning runs)
    lr_law: dict[str, float] | None = None  # the fitted LR_opt(N) a "tuned" run uses
    # branching sweeps (experiments.branching): "trunk" (a constant-LR trunk's segment) or
    # "branch" (a cooldown from the trunk); an ordinary run is "run"
    role: str = "run"
    parent: str | None = None  # the run whose checkpoint at start_step this one starts from
    start_step: int = 0
    trunk: str | None = None  # the trunk a segment or branch belongs to
    flops_spent: float | None = None  # FLOPs this point costs (sweep convention); None: C

    @property
    def work_steps(self) -> int:
        """Steps this run trains itself (a branch starts at its trunk's step)."""
        return self.steps - self.start_step

    @property
    def work_detailed_flops(self) -> float:
        """Detailed FLOPs of the steps this run trains itself: what its time depends on."""
        if not self.start_step:
            return self.detailed_flops
        return self.detailed_flops * self.work_steps / self.steps

    @property
    def work_flops(self) -> float:
        """FLOPs (sweep convention) of the steps this run trains itself: a trunk segment's
        steps, a branch's cooldown, an ordinary run's budget_spent. They sum to a sweep's cost."""
        if self.role == "trunk" or not self.start_step:
            return self.spent
        return self.budget_spent * self.work_steps / self.steps

    @property
    def spent(self) -> float:
        """FLOPs (sweep convention) this point costs: a branch's cooldown plus its share of
        the trunk, a trunk segment's own steps; an ordinary run's budget_spent."""
        return self.budget_spent if self.flops_spent is None else self.flops_spent

    @property
    def model(self) -> ModelConfig:
        return self.config.model

    @property
    def N(self) -> int:
        return self.config.model.num_params()

    @property
    def N_nonemb(self) -> int:
        return self.config.model.num_nonembedding_params()

    @property
    def D(self) -> int:
        return self.config.num_tokens

    @property
    def steps(self) -> int:
        return self.config.num_steps

    @property
    def tokens_per_param(self) -> float:
        return self.D / self.N

    @property
    def detailed_flops(self) -> float:
        """C in the detailed (causal attention) convention, what the MFU meter runs on."""
        return self.config.model.flops_per_token("causal") * self.D

    def record(self, convention: str) -> dict[str, Any]:
        """What the runner stores next to the run (`sweep_point.json`) to rebuild the table."""
        return {
            "run_id": self.run_id,
            "budget": self.budget,
            "seed": self.seed,
            "extra_seed": self.extra_seed,
            "tuning": self.tuning,
            "lr_policy": self.lr_policy,
            "lr_law": self.lr_law,
            "target_params": self.target_params,
            "flop_convention": convention,
            "budget_spent": self.budget_spent,
            "config_hash": self.config.config_hash(),
            "N": self.N,
            "N_nonemb": self.N_nonemb,
            "D": self.D,
            "steps": self.steps,
            "batch_size": self.config.batch_size,
            "peak_lr": self.config.peak_lr,
            "role": self.role,
            "parent": self.parent,
            "start_step": self.start_step,
            "trunk": self.trunk,
            "flops_spent": self.spent,
            "work_flops": self.work_flops,
        }


@dataclasses.dataclass(frozen=True)
class DroppedPoint:
    """A (budget, size) the solver did not keep, and why."""

    budget: float
    target_params: float
    N: int | None
    reason: str


@dataclasses.dataclass(frozen=True)
class Grid:
    points: tuple[GridPoint, ...]
    dropped: tuple[DroppedPoint, ...]

    def by_id(self) -> dict[str, GridPoint]:
        return {p.run_id: p for p in self.points}

    @property
    def total_flops(self) -> float:
        """FLOPs of the study's points (sweep convention), as standalone runs."""
        return sum(p.budget_spent for p in self.points if p.role != "trunk")

    @property
    def spent_flops(self) -> float:
        """FLOPs actually trained (a branching sweep's trunks once, its cooldowns)."""
        return sum(p.work_flops for p in self.points)


def format_number(value: float, digits: int = 2) -> str:
    """3e12 -> '3e12', 91234 -> '9.1e4': short, filename-safe, deterministic."""
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def make_run_id(budget: float, num_params: int, seed: int, config_hash: str) -> str:
    return f"c{format_number(budget)}_n{format_number(num_params)}_s{seed}_{config_hash[:6]}"


def ladder_targets(spec: SweepSpec, budget: float) -> list[float]:
    """Parameter targets for one budget: log-spaced around the N_opt guess, within the limits.

    The window keeps `sizes_per_budget` sizes: it slides up (or down) to stay inside
    [min_params, max_params] rather than losing sizes at the edge.
    """
    if spec.params is not None:
        return list(spec.params)
    k = spec.sizes_per_budget
    log_center = math.log(spec.center_params(budget))
    log_step = math.log(spec.spacing)
    low = log_center - log_step * (k - 1) / 2
    if spec.min_params > 0:
        low = max(low, math.log(spec.min_params))
    if math.isfinite(spec.max_params):
        low = min(low, math.log(spec.max_params) - log_step * (k - 1))
    return [math.exp(low + i * log_step) for i in range(k)]


def model_shapes(
    spec: SweepSpec, budget: float, vocab_size: int
) -> list[tuple[float, ModelConfig]]:
    """(target, shape) pairs for a budget, from the shape rule (or explicit widths)."""
    template = {k: v for k, v in spec.template["model"].items() if k != "vocab_size"}
    vocab = spec.template["model"].get("vocab_size", vocab_size)
    ctx = template.pop("ctx", 128)
    if spec.d_models is not None:
        shapes = [
            presets.shape_for_width(d, vocab_size=vocab, ctx=ctx, **template) for d in spec.d_models
        ]
        return [(float(m.num_params()), m) for m in shapes]
    return [
        (t, presets.model_for_params(t, vocab_size=vocab, ctx=ctx, **template))
        for t in ladder_targets(spec, budget)
    ]


def run_config_for(spec: SweepSpec, model: ModelConfig, num_tokens: int, seed: int) -> RunConfig:
    """The full RunConfig of one point: the template with the shape, D and seed filled in."""
    t = spec.template
    table = {
        **t["run"],
        "model": model.to_dict(),
        "num_tokens": num_tokens,
        "seed": seed,
        "optimizer": dict(t["optimizer"]),
        "mesh": dict(t["mesh"]),
        "data": dict(t["data"]),
    }
    return RunConfig.from_dict(table)


def batch_for(spec: SweepSpec, model: ModelConfig) -> int:
    """The batch a model trains with: the template's, scaled by its `batch_rule` if any."""
    run = spec.template["run"]
    base = run.get("batch_size", 8)
    rule = run.get("batch_rule")
    if not rule:
        return base
    return ScalingRule(**rule).batch_size(base, model.num_params(), run.get("batch_multiple", 8))


def lr_policy(spec: SweepSpec) -> str:
    """How the main runs' peak LR is chosen: tuned per size, muP, a preset rule, or fixed."""
    if spec.tuning is not None:
        return "tuned"
    if spec.template["model"].get("parameterization") == "mup":
        return "mup"
    rule = spec.template["run"].get("lr_rule")
    return "lr_rule" if rule and rule.get("exponent", 0.0) else "fixed"


def solve_grid(
    spec: SweepSpec,
    *,
    vocab_size: int,
    train_tokens: int | None = None,
    memory_check: MemoryCheck | None = None,
) -> Grid:
    """Every kept point (budget ascending, then N, then seed) and every dropped one."""
    points: list[GridPoint] = []
    dropped: list[DroppedPoint] = []
    for budget in spec.budgets:
        kept: dict[tuple, tuple[float, ModelConfig, int]] = {}
        seen: dict[tuple, float] = {}
        for target, model in model_shapes(spec, budget, vocab_size):
            n = model.num_params()
            if not spec.min_params <= n <= spec.max_params:
                dropped.append(
                    DroppedPoint(budget, target, n, f"N={n:,} outside [min_params, max_params]")
                )
                continue
            key = tuple(sorted(model.to_dict().items()))
            if key in seen:
                dropped.append(
                    DroppedPoint(
                        budget,
                        target,
                        n,
                        f"duplicate: the shape rule rounds target {target:.3g} to the same "
                        f"model as target {seen[key]:.3g} (N={n:,}); widen spacing",
                    )
                )
                continue
            seen[key] = target
            batch = batch_for(spec, model)
            tokens_per_step = batch * model.ctx
            per_token = model.flops_per_token(spec.counting_convention)
            steps = max(1, round(budget / per_token / tokens_per_step))
            reason = _drop_reason(spec, model, steps, tokens_per_step, train_tokens, memory_check)
            if reason:
                dropped.append(DroppedPoint(budget, target, n, reason))
                continue
            kept[key] = (target, model, steps * tokens_per_step)
        center = spec.center_params(budget)
        by_distance = sorted(kept.values(), key=lambda v: abs(math.log(v[1].num_params() / center)))
        near = {id(v[1]) for v in by_distance[: spec.extra_seeds_near_minimum]}
        for target, model, num_tokens in sorted(kept.values(), key=lambda v: v[1].num_params()):
            seeds = [(s, False) for s in spec.seeds]
            if id(model) in near:
                seeds += [(s, True) for s in spec.extra_seeds]
            for seed, extra in seeds:
                points.append(
                    _point(
                        spec,
                        budget,
                        target,
                        model,
                        num_tokens,
                        seed,
                        extra,
                        train_tokens,
                    )
                )
    return Grid(tuple(points), tuple(dropped))


def _drop_reason(
    spec: SweepSpec,
    model: ModelConfig,
    steps: int,
    tokens_per_step: int,
    train_tokens: int | None,
    memory_check: MemoryCheck | None,
) -> str | None:
    if steps < spec.min_steps:
        return (
            f"too few steps: {steps} < min_steps {spec.min_steps} "
            "(lower batch_size or ctx, or raise the budget)"
        )
    if train_tokens:
        epochs = steps * tokens_per_step / train_tokens
        if epochs > spec.max_epochs:
            return (
                f"too many epochs: {epochs:.2f} > max_epochs {spec.max_epochs:g} over "
                f"{train_tokens:,} unique train tokens (use a larger corpus or raise max_epochs)"
            )
    if memory_check is not None:
        return memory_check(model, batch_for(spec, model))
    return None


def _point(
    spec: SweepSpec,
    budget: float,
    target: float,
    model: ModelConfig,
    num_tokens: int,
    seed: int,
    extra: bool,
    train_tokens: int | None,
) -> GridPoint:
    config = run_config_for(spec, model, num_tokens, seed)
    per_token = model.flops_per_token(spec.counting_convention)
    return GridPoint(
        lr_policy=lr_policy(spec),
        run_id=make_run_id(budget, model.num_params(), seed, config.config_hash()),
        budget=budget,
        seed=seed,
        extra_seed=extra,
        target_params=target,
        config=config,
        flops_per_token=per_token,
        budget_spent=per_token * num_tokens,
        epochs=num_tokens / train_tokens if train_tokens else None,
    )
