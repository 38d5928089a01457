"""Run the requested fits on a Dataset and turn them into plain JSON-ready dictionaries.

One function per output shape, so the CLI, the report and the tests share them. A fit that
cannot run on the data (too few budgets, no curves) becomes a warning, not a crash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from analysis.approach1 import Approach1Fit, fit_approach1
from analysis.approach2 import Approach2Fit, fit_approach2, isoflop_minima
from analysis.approach3 import Approach3Fit, fit_approach3
from analysis.cost_optimum import CostOptimum, cost_optimum
from analysis.errors import FitError
from analysis.frontier import FrontierFit, KaplanFit, fit_frontier, fit_kaplan
from analysis.loading import Dataset
from analysis.reference import TOKENS_PER_PARAM_RULE
from analysis.surface import effective_flops_per_param_token

DEFAULT_AT = (1e21, 5.88e23)


@dataclass
class Analysis:
    """All fits of one dataset; missing ones are None with the reason in `warnings`."""

    dataset: Dataset
    approach1: Approach1Fit | None = None
    approach2: Approach2Fit | None = None
    approach3: Approach3Fit | None = None
    approach3_cost: CostOptimum | None = None  # its optimum under a C not proportional to ND
    frontier: FrontierFit | None = None
    kaplan: dict[str, KaplanFit] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    at: tuple[float, ...] = DEFAULT_AT
    options: dict[str, object] = field(default_factory=dict)  # Approach 2's, for refits


def default_at(ds: Dataset) -> tuple[float, ...]:
    """A sweep's budgets when the data has them, else DEFAULT_AT."""
    if ds.has_budgets:
        return tuple(sorted({float(b) for b in ds.points["budget"]}))
    return DEFAULT_AT


NAMES = {"1": "Approach 1", "2": "Approach 2", "3": "Approach 3"}
SCHEMA_VERSION = 2  # of the `fit --json` document (2: schema_version and `columns` added)


def run_fits(
    ds: Dataset,
    approaches: tuple[str, ...] = ("1", "2", "3"),
    n_boot: int = 1000,
    n_boot_a3: int = 4000,
    seed: int = 0,
    k_nearest: int | None = None,
    include_edge: bool = False,
    at: tuple[float, ...] | None = None,
    strict: bool = False,
) -> Analysis:
    """Fit what is asked and what the data support; record why the rest did not run.

    `at`: budgets for tokens/param; by default a sweep's own budgets (what the lab measured),
    else Chinchilla's (1e21 and its 5.88e23). `strict`: an asked-for approach that cannot
    be fitted raises `FitError` with the reason (`fit --approach 2`) instead of a warning.
    """
    if at is None:
        at = default_at(ds)
    out = Analysis(ds, warnings=list(ds.warnings), at=tuple(at))
    out.options = dict(
        n_boot=n_boot,
        n_boot_a3=n_boot_a3,
        seed=seed,
        k_nearest=k_nearest,
        include_edge=include_edge,
    )
    pts = ds.points
    fitters = {
        "1": lambda: fit_approach1(ds.curves, n_boot=n_boot, seed=seed),
        "2": lambda: fit_approach2(
            pts, n_boot=n_boot, seed=seed, k_nearest=k_nearest, include_edge=include_edge
        ),
        "3": lambda: fit_approach3(
            pts["N"],
            pts["D"],
            pts["loss"],
            n_boot=n_boot_a3,
            seed=seed,
            flops_per_param_token=effective_flops_per_param_token(
                pts["N"],
                pts["D"],
                pts.get("C"),
                "6ND" if ds.conventions.is_6nd else ds.conventions.c_flops,
            ),
        ),
    }
    skipped = {}
    for key in approaches:
        try:
            if not ds.has_sizes:
                raise FitError("the data have no N column (C and loss only)")
            setattr(out, f"approach{key}", fitters[key]())
        except FitError as e:
            skipped[key] = str(e)
            out.warnings.append(f"{NAMES[key]} skipped: {e}")
    if strict and skipped:
        raise FitError(
            "; ".join(f"{NAMES[k]} cannot be fitted on this data: {r}" for k, r in skipped.items())
        )
    try:
        out.frontier = fit_frontier(pts, n_boot=min(n_boot, 200), seed=seed)
    except FitError as e:
        skipped["frontier"] = str(e)
        out.warnings.append(f"loss-vs-compute frontier skipped: {e}")
    if len(skipped) == len(approaches) + 1:
        raise FitError("no fit can run on this data: " + "; ".join(skipped.values()))
    if ds.has_sizes:
        out.kaplan = {v: fit_kaplan(pts, v) for v in ("N", "D")}
    for fit in (out.approach1, out.approach2):
        if fit is not None:
            out.warnings.extend(fit.warnings)
    if out.approach3 is not None and ds.has_budgets and not ds.conventions.is_6nd:
        out.approach3_cost = cost_optimum(out.approach3, pts, out.at)
    if out.approach3 is not None:
        out.warnings.extend(out.approach3.diagnostics.get("warnings", []))
        out.warnings.extend(_unbracketed_warning(out, k_nearest))
    if out.frontier is not None:
        out.warnings.extend(out.frontier.warnings)
    return out


def _unbracketed_warning(an: Analysis, k_nearest: int | None) -> list[str]:
    """Approach 3 extrapolates when no budget's sizes bracket its IsoFLOP minimum: say so."""
    if an.approach2 is not None:
        table = an.approach2.budgets
    else:
        try:
            table = isoflop_minima(an.dataset.points, k_nearest=k_nearest).table
        except FitError:
            return []  # no budget with 3+ sizes: nothing to say about minima
    if len(table) and bool(table["edge"].all()):
        return [
            f"Approach 3: every IsoFLOP minimum ({len(table)} budgets) lies at or beyond the "
            "edge of the sampled sizes, so no budget brackets the optimum; its a, b and "
            "allocations are an extrapolation of the fitted surface, not a measurement"
        ]
    return []


def clean(obj: object) -> object:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _tpp(fit: Approach1Fit | Approach2Fit | Approach3Fit, at: tuple[float, ...]) -> list[dict]:
    rows = []
    for C in at:
        t = fit.tokens_per_param(C)
        ci = t.get("ci")
        finite = bool(ci) and bool(np.isfinite(ci).all())
        t["contains_20"] = bool(ci[0] <= TOKENS_PER_PARAM_RULE <= ci[1]) if finite else None
        rows.append(t)
    return rows


def approach_dicts(an: Analysis, max_samples: int = 1000) -> dict[str, dict]:
    """One JSON object per approach (plus frontier and Kaplan), keyed approach1..3."""
    conv = an.dataset.conventions.as_dict()
    out: dict[str, dict] = {}
    if an.approach1 is not None:
        f = an.approach1
        out["approach1"] = {
            "approach": 1,
            "a": f.a,
            "b": f.b,
            "ci": f.ci,
            "conventions": conv,
            "tokens_per_param": _tpp(f, an.at),
            "warnings": f.warnings,
            "diagnostics": f.diagnostics,
        }
    if an.approach2 is not None:
        f = an.approach2
        cols = [
            "budget",
            "C_opt",
            "n_runs",
            "n_sizes",
            "N_opt",
            "D_opt",
            "loss_opt",
            "N_opt_ci",
            "D_opt_ci",
            "boot_invalid",
            "edge",
            "in_frontier",
        ]
        out["approach2"] = {
            "approach": 2,
            "a": f.a,
            "b": f.b,
            "ci": f.ci,
            "conventions": conv,
            "tokens_per_param": _tpp(f, an.at),
            "budgets": f.budgets[cols].to_dict("records"),
            "warnings": f.warnings,
            "diagnostics": f.diagnostics,
        }
    if an.approach3 is not None:
        f = an.approach3
        d = {"approach": 3, **f.params, "a": f.a, "b": f.b, "ci": f.ci, "conventions": conv}
        d["G"] = float(
            (f.params["alpha"] * f.params["A"] / (f.params["beta"] * f.params["B"]))
            ** (1 / (f.params["alpha"] + f.params["beta"]))
        )
        d["objective"] = f.objective
        d["n_points"] = f.n_points
        d["tokens_per_param"] = _tpp(f, an.at)
        if an.approach3_cost is not None:
            d["a_at_cost"] = {
                "a": an.approach3_cost.a,
                "ci": an.approach3_cost.ci,
                "budgets": an.approach3_cost.budgets,
                "N_opt": an.approach3_cost.n_opt,
                "method": "local slope of N_opt(C) over the budgets, minimising L(N, D) subject "
                "to the runs' own C = k(N) N D (k interpolated over their sizes)",
            }
        d["diagnostics"] = f.diagnostics
        if f.samples is not None:
            d["bootstrap_samples"] = {
                "columns": ["E", "A", "B", "alpha", "beta"],
                "rows": f.samples[:max_samples].tolist(),
            }
        out["approach3"] = d
    if an.frontier is not None:
        fr = an.frontier
        out["frontier"] = {
            "plain": {"exponent": fr.plain_exponent, "coef": float(np.exp(fr.plain_log_coef))},
            "saturating": None
            if fr.saturating is None
            else {"E": fr.saturating.E, "C0": fr.saturating.C0, "gamma": fr.saturating.gamma},
            "ci": fr.ci,
            "conventions": conv,
        }
    out["kaplan"] = {
        v: {"supported": k.supported, "alpha": k.alpha, "X_c": k.X_c, "reason": k.reason}
        for v, k in an.kaplan.items()
    }
    return clean(out)  # type: ignore[return-value]


def fit_document(an: Analysis) -> dict:
    """The whole `fit --json` document: source, conventions, warnings, one object per fit."""
    return clean(
        {
            "schema_version": SCHEMA_VERSION,
            "source": an.dataset.source,
            "conventions": an.dataset.conventions.as_dict(),
            "n_runs": len(an.dataset.points),
            "columns": an.dataset.columns,
            "at": list(an.at),
            **approach_dicts(an),
            "warnings": an.warnings,
            "notes": an.dataset.notes,
            **({"samples": an.dataset.samples} if an.dataset.samples is not None else {}),
        }
    )  # type: ignore[return-value]
