"""The tuning stage: per-size LR sweeps before the main runs, and the LR law they give.

Tuning runs are ordinary grid points (same results store, claims, resume, `--worker` split)
marked `tuning = true`, with run ids `tune_n<N>_lr<LR>_s<seed>_<hash>` and their FLOPs kept
apart from the study's. Once every tuning run has finished, `analysis.lr_tuning` picks each
size's LR (parabola in log LR) and fits LR_opt(N) = lr_ref (N / n_ref)^exponent; the law is
written once to DIR/lr_law.json (later workers reuse it, so a retried tuning run cannot move
finished main runs) and becomes every main run's `lr_rule` (peak LR = lr_ref, reference
n_ref, the exponent): interpolation between tuned sizes by the power law. No JAX here.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any

from analysis.lr_tuning import LrLaw, LrTuningError, fit_lr_law, picks_by_size
from experiments import sweep_dir
from experiments.grid import Grid, GridPoint, batch_for, format_number, run_config_for
from experiments.sweep_file import SweepSpec
from experiments.tuning_spec import TuningSpec, TuningSpecError
from lab.config import ModelConfig
from lab.run_config import ScalingRule
from lab.run_status import RunStatus
from lab.runtime.atomic_io import as_path, read_json, write_json_atomic

LAW_FILE = "lr_law.json"
TUNING_PREFIX = "tune_"


def tuning_sizes(spec: SweepSpec, grid: Grid) -> list[ModelConfig]:
    """The distinct models of the main grid that get an LR sweep, smallest first."""
    tuning = _require(spec)
    models: dict[tuple, ModelConfig] = {}
    for point in grid.points:
        models.setdefault(tuple(sorted(point.model.to_dict().items())), point.model)
    chosen = sorted(models.values(), key=lambda m: m.num_params())
    if tuning.sizes is None:
        return chosen
    widths = {m.d_model for m in chosen}
    missing = sorted(set(tuning.sizes) - widths)
    if missing:
        raise TuningSpecError(
            f"[tuning] sizes {missing} are not widths of the ladder; choose from {sorted(widths)}"
        )
    return [m for m in chosen if m.d_model in tuning.sizes]


def tuning_points(spec: SweepSpec, grid: Grid) -> list[GridPoint]:
    """Every tuning run: size x LR x seed, each `steps` long with its own cosine schedule."""
    tuning = _require(spec)
    points = []
    for model in tuning_sizes(spec, grid):
        batch = batch_for(spec, model)
        per_token = model.flops_per_token(spec.counting_convention)
        steps = tuning.steps_for(per_token, batch * model.ctx)
        num_tokens = steps * batch * model.ctx
        for lr in tuning.lrs:
            for seed in tuning.seeds:
                base = run_config_for(spec, model, num_tokens, seed)
                config = dataclasses.replace(
                    base,
                    optimizer=dataclasses.replace(base.optimizer, peak_lr=lr),
                    lr_rule=None,
                    eval_fractions=(1.0,),
                    keep_final_checkpoint=False,
                )
                spent = per_token * num_tokens
                run_id = (
                    f"{TUNING_PREFIX}n{format_number(model.num_params())}_lr{format_number(lr)}"
                    f"_s{seed}_{config.config_hash()[:6]}"
                )
                points.append(
                    GridPoint(
                        run_id=run_id,
                        budget=spent,
                        seed=seed,
                        extra_seed=False,
                        target_params=float(model.num_params()),
                        config=config,
                        flops_per_token=per_token,
                        budget_spent=spent,
                        epochs=None,
                        tuning=True,
                        lr_policy="tuning",
                    )
                )
    return points


def tuning_grid(spec: SweepSpec, grid: Grid) -> Grid:
    return Grid(tuple(tuning_points(spec, grid)), ())


def law_from_results(out: str | os.PathLike, points: list[GridPoint]) -> LrLaw:
    """Pick each size's LR from the finished tuning runs and fit LR_opt(N)."""
    sizes, lrs, losses = [], [], []
    for point in points:
        if sweep_dir.read_result(out, point.run_id) is None:
            raise TuningSpecError(
                f"tuning run {point.run_id} has no result (failed?); fix it and re-run with "
                "--retry-failed, or remove that size from [tuning] sizes"
            )
        sizes.append(point.N)
        lrs.append(point.config.peak_lr)
        losses.append(_loss(out, point))
    try:
        picks = picks_by_size(sizes, lrs, losses)
        for n, pick in picks.items():
            if pick.warning:
                warnings.warn(f"LR tuning, N={n:,.0f}: {pick.warning}", stacklevel=2)
        return fit_lr_law(list(picks), [p.lr for p in picks.values()])
    except LrTuningError as error:
        raise TuningSpecError(f"LR tuning: {error}") from None


def resolve_law(out: str | os.PathLike, points: list[GridPoint]) -> LrLaw:
    """The sweep's law: DIR/lr_law.json if written, else fitted now and written."""
    path = as_path(out) / LAW_FILE
    if path.exists():
        record = read_json(path)
        return LrLaw(**record["law"])
    law = law_from_results(out, points)
    sizes = picks_by_size(
        [p.N for p in points],
        [p.config.peak_lr for p in points],
        [_loss(out, p) for p in points],
    )
    write_json_atomic(
        path,
        {
            "law": law.to_dict(),
            "describe": law.describe(),
            "picks": [
                {"N": n, "lr": p.lr, "loss": p.loss, "warning": p.warning, "coeffs": p.coeffs}
                for n, p in sizes.items()
            ],
        },
    )
    return law


def _loss(out: str | os.PathLike, point: GridPoint) -> float:
    """The final loss of a finished tuning run; NaN if it diverged (or has no loss)."""
    result = sweep_dir.read_result(out, point.run_id) or {}
    loss = result.get("loss")
    done = result.get("status") == RunStatus.DONE
    return float(loss) if done and loss is not None else float("nan")


def apply_law(grid: Grid, law: LrLaw) -> Grid:
    """The main grid with every run's peak LR from the law (new config hashes and run ids)."""
    from experiments.grid import make_run_id

    points = []
    for p in grid.points:
        config = dataclasses.replace(
            p.config,
            optimizer=dataclasses.replace(p.config.optimizer, peak_lr=_short(law.lr_ref)),
            lr_rule=ScalingRule(reference_params=_short(law.n_ref), exponent=_short(law.exponent)),
        )
        run_id = make_run_id(p.budget, p.N, p.seed, config.config_hash())
        points.append(
            dataclasses.replace(
                p, run_id=run_id, config=config, lr_policy="tuned", lr_law=law.to_dict()
            )
        )
    return Grid(tuple(points), grid.dropped)


def _short(value: float) -> float:
    """6 significant digits: the same law gives the same hash whatever float noise."""
    return float(f"{value:.6g}")


def tuning_summary(points: list[GridPoint], study: Grid) -> dict[str, Any]:
    """Runs, FLOPs and the tuning cost as a fraction of the study's FLOPs (sweep convention)."""
    flops = sum(p.budget_spent for p in points)
    return {
        "runs": len(points),
        "flops": flops,
        "fraction": flops / study.total_flops if study.total_flops else float("inf"),
    }


def _require(spec: SweepSpec) -> TuningSpec:
    if spec.tuning is None:
        raise TuningSpecError(f"sweep {spec.name} has no [tuning] table")
    return spec.tuning
