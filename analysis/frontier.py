"""Loss-vs-compute frontier L(C) = E + (C0/C)^gamma (and plain (C0/C)^gamma), and Kaplan-style
L(N), L(D) power laws.

The frontier points are the lowest loss reached at each budget. Kaplan et al.'s L(N) is the
loss of a model trained to convergence; an IsoFLOP sweep only bounds it from above, so we fit
the best loss reached by each size (and by each token count) and say so; when the data have
fewer than 3 distinct values over less than half a decade, we do not fit at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.approach2 import budget_groups
from analysis.bootstrap import DEFAULT_LEVEL, ci_dict, grouped_resample_weights
from analysis.errors import FitError
from analysis.powerlaw import SaturatingPowerLaw, fit_power_law, fit_saturating, loglog_fit


@dataclass
class FrontierFit:
    """Frontier points and both forms of L(C), with bootstrap intervals of the exponents."""

    points: pd.DataFrame  # budget, loss (best at that budget), N, D
    saturating: SaturatingPowerLaw | None
    plain_exponent: float  # L = k C^plain_exponent (negative)
    plain_log_coef: float
    ci: dict[str, list[float]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def plain(self, C: np.ndarray | float) -> np.ndarray:
        return np.exp(self.plain_log_coef) * np.asarray(C, dtype=float) ** self.plain_exponent


def _best_per_budget(points: pd.DataFrame, budgets: np.ndarray, W_Rxn: np.ndarray) -> np.ndarray:
    """(R x budgets) lowest seed-averaged loss per budget among rows with positive weight."""
    uniq = np.unique(budgets)
    sizes = points["N"].to_numpy(dtype=float)
    # Seeds of one size average; without N (C and loss only) every run stands alone.
    sizes = np.where(np.isnan(sizes), -1.0 - np.arange(sizes.size), sizes)
    keys = pd.MultiIndex.from_arrays([budgets, sizes])
    group_n, group_keys = pd.factorize(keys)
    onehot_nxG = np.zeros((len(points), len(group_keys)))
    onehot_nxG[np.arange(len(points)), group_n] = 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_RxG = (W_Rxn * points["loss"].to_numpy()) @ onehot_nxG / (W_Rxn @ onehot_nxG)
    group_budget = np.array([k[0] for k in group_keys])
    out = np.full((W_Rxn.shape[0], uniq.size), np.nan)
    for j, C_b in enumerate(uniq):
        cols = mean_RxG[:, group_budget == C_b]
        has = np.isfinite(cols).any(axis=1)
        out[has, j] = np.nanmin(cols[has], axis=1)
    return out


def fit_frontier(
    points: pd.DataFrame, n_boot: int = 200, seed: int = 0, level: float = DEFAULT_LEVEL
) -> FrontierFit:
    """Fit L(C) through the best loss at each budget."""
    budgets = budget_groups(points)
    uniq = np.unique(budgets)
    if uniq.size < 2:
        raise FitError("the loss-vs-compute frontier needs runs at 2+ budgets")
    best = _best_per_budget(points, budgets, np.ones((1, len(points))))[0]
    rows = []
    for C_b, L_b in zip(uniq, best, strict=True):
        g = points.loc[budgets == C_b]
        r = g.loc[g["loss"].idxmin()]
        rows.append(
            {"budget": float(C_b), "loss": float(L_b), "N": float(r["N"]), "D": float(r["D"])}
        )
    table = pd.DataFrame(rows)
    plain = fit_power_law(uniq, best)
    sat = fit_saturating(uniq, best)
    fit = FrontierFit(table, sat, plain.exponent, float(np.log(plain.coef)))
    if sat is None:
        fit.warnings.append(
            "L(C) = E + (C0/C)^gamma not identified (needs 4+ budgets); only the plain power law"
        )
    if n_boot > 0:
        W = grouped_resample_weights(budgets, n_boot, seed)
        B = _best_per_budget(points, budgets, W)
        slope, _ = loglog_fit(uniq, B)
        draws = {"plain_exponent": slope}
        if sat is not None:
            fits = [fit_saturating(uniq, B[r], start=sat) for r in range(min(n_boot, 100))]
            for key in ("gamma", "E"):
                draws[key] = np.array([getattr(f, key, np.nan) for f in fits])
        fit.ci = ci_dict(draws, level)
    return fit


@dataclass
class KaplanFit:
    """L(X) = (X_c / X)^alpha_X for X = N or D, or the reason it was not fitted."""

    variable: str
    supported: bool
    alpha: float = float("nan")
    X_c: float = float("nan")
    reason: str = ""
    points: pd.DataFrame | None = None


def fit_kaplan(points: pd.DataFrame, variable: str = "N") -> KaplanFit:
    """Power law through the lowest loss reached at each distinct N (or D, binned 0.05 decade)."""
    x = points[variable].to_numpy(dtype=float)
    key = np.round(np.log10(x) / 0.05) if variable == "D" else x
    df = pd.DataFrame({"key": key, "x": x, "loss": points["loss"].to_numpy()})
    env = df.groupby("key").agg(x=("x", "median"), loss=("loss", "min")).reset_index(drop=True)
    span = np.log10(env["x"].max() / env["x"].min()) if len(env) else 0.0
    if len(env) < 3 or span < 0.5:
        return KaplanFit(
            variable,
            False,
            reason=f"only {len(env)} distinct {variable} over {span:.2f} decades (need 3 over 0.5)",
        )
    law = fit_power_law(env["x"].to_numpy(), env["loss"].to_numpy())
    alpha = -law.exponent
    with np.errstate(over="ignore"):  # a nearly flat law puts X_c beyond float range: inf
        X_c = float(np.exp(np.log(law.coef) / alpha)) if alpha > 0 else float("nan")
    return KaplanFit(
        variable,
        bool(alpha > 0),
        float(alpha),
        float(X_c),
        "best loss per value: an upper bound on the converged loss Kaplan et al. fit"
        if alpha > 0
        else "loss does not fall with " + variable,
        env,
    )
