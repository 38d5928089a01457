"""Run the requested fits on a Dataset and turn them into plain JSON-ready dictionaries.

One function per output shape, so the CLI, the report and the tests share them. A fit that
cannot run on the data (too few budgets, no curves) becomes a warning, not a crash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from analysis.approach1 import Approach1Fit, fit_approach1
from analysis.approach2 import Approach2Fit, fit_approach2
from analysis.approach3 import Approach3Fit, fit_approach3
from analysis.errors import FitError
from analysis.frontier import FrontierFit, KaplanFit, fit_frontier, fit_kaplan
from analysis.loading import Dataset
from analysis.reference import TOKENS_PER_PARAM_RULE

DEFAULT_AT = (1e21, 5.88e23)


@dataclass
class Analysis:
    """All fits of one dataset; missing ones are None with the reason in `warnings`."""

    dataset: Dataset
    approach1: Approach1Fit | None = None
    approach2: Approach2Fit | None = None
    approach3: Approach3Fit | None = None
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


def run_fits(
    ds: Dataset,
    approaches: tuple[str, ...] = ("1", "2", "3"),
    n_boot: int = 1000,
    n_boot_a3: int = 4000,
    seed: int = 0,
    k_nearest: int | None = None,
    include_edge: bool = False,
    at: tuple[float, ...] | None = None,
) -> Analysis:
    """Fit what is asked and what the data support; record why the rest did not run.

    `at`: budgets for tokens/param; by default a sweep's own budgets (what the lab measured),
    else Chinchilla's (1e21 and its 5.88e23).
    """
    if at is None:
        at = default_at(ds)
    out = Analysis(ds, warnings=list(ds.warnings), at=tuple(at))
    out.options = dict(n_boot=n_boot, seed=seed, k_nearest=k_nearest, include_edge=include_edge)
    pts = ds.points
    if "1" in approaches:
        try:
            out.approach1 = fit_approach1(ds.curves, n_boot=n_boot, seed=seed)
        except FitError as e:
            out.warnings.append(f"Approach 1 skipped: {e}")
    if "2" in approaches:
        try:
            out.approach2 = fit_approach2(
                pts, n_boot=n_boot, seed=seed, k_nearest=k_nearest, include_edge=include_edge
            )
        except FitError as e:
            out.warnings.append(f"Approach 2 skipped: {e}")
    if "3" in approaches:
        try:
            out.approach3 = fit_approach3(
                pts["N"], pts["D"], pts["loss"], n_boot=n_boot_a3, seed=seed
            )
        except FitError as e:
            out.warnings.append(f"Approach 3 skipped: {e}")
    try:
        out.frontier = fit_frontier(pts, n_boot=min(n_boot, 200), seed=seed)
    except FitError as e:
        out.warnings.append(f"loss-vs-compute frontier skipped: {e}")
    out.kaplan = {v: fit_kaplan(pts, v) for v in ("N", "D")}
    for fit in (out.approach1, out.approach2):
        if fit is not None:
            out.warnings.extend(fit.warnings)
    if out.approach3 is not None:
        out.warnings.extend(out.approach3.diagnostics.get("warnings", []))
    if out.frontier is not None:
        out.warnings.extend(out.frontier.warnings)
    return out


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
            "source": an.dataset.source,
            "conventions": an.dataset.conventions.as_dict(),
            "n_runs": len(an.dataset.points),
            "at": list(an.at),
            **approach_dicts(an),
            "warnings": an.warnings,
            "notes": an.dataset.notes,
            **({"samples": an.dataset.samples} if an.dataset.samples is not None else {}),
        }
    )  # type: ignore[return-value]
