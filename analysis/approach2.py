"""Approach 2: IsoFLOP profiles. At each budget, a parabola of loss in log N (and in log D);
its minimum gives N_opt(C), D_opt(C); power laws N_opt ~ C^a, D_opt ~ C^b across budgets.

A minimum at or beyond the edge of the sampled sizes is flagged and left out of the
frontier fit (an extrapolated vertex is not a measurement). Over a wide size range the
profile is not a parabola (the few-step side is steeper), so `k_nearest` fits only the k
sizes nearest the best one. Seeds are averaged: the parabola is a least-squares fit over
all runs, so repeated seeds at one size weigh as their mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.bootstrap import DEFAULT_LEVEL, grouped_resample_weights, percentile_ci
from analysis.errors import FitError
from analysis.powerlaw import loglog_fit


@dataclass
class Approach2Fit:
    """Per-budget minima (`budgets`), the frontier power laws and their bootstrap."""

    budgets: pd.DataFrame
    a: float
    b: float
    log_kN: float
    log_kD: float
    ci: dict[str, list[float]] = field(default_factory=dict)
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    diagnostics: dict[str, object] = field(default_factory=dict)
    level: float = DEFAULT_LEVEL

    def n_opt(self, C: float | np.ndarray) -> np.ndarray:
        return np.exp(self.log_kN) * np.asarray(C, dtype=float) ** self.a

    def d_opt(self, C: float | np.ndarray) -> np.ndarray:
        return np.exp(self.log_kD) * np.asarray(C, dtype=float) ** self.b

    def tokens_per_param(self, C: float) -> dict[str, float | list[float]]:
        out: dict[str, float | list[float]] = {
            "C": float(C),
            "value": float(self.d_opt(C) / self.n_opt(C)),
        }
        if self.samples:
            s = self.samples
            ratio = np.exp(s["log_kD"] - s["log_kN"]) * float(C) ** (s["b"] - s["a"])
            out["ci"] = list(percentile_ci(ratio, self.level))
        return out


def budget_groups(points: pd.DataFrame, max_width_decades: float = 0.1) -> np.ndarray:
    """Nominal budget of each row: the `budget` column, else clusters of log10 C."""
    if "budget" in points and points["budget"].notna().all():
        return points["budget"].to_numpy(dtype=float)
    lc = np.log10(points["C"].to_numpy(dtype=float))
    order = np.argsort(lc)
    label = np.empty(lc.size, dtype=int)
    start, g = lc[order[0]], 0
    for i in order:
        if lc[i] - start > max_width_decades:
            g, start = g + 1, lc[i]
        label[i] = g
    centers = np.array([10 ** lc[label == k].mean() for k in range(g + 1)])
    return centers[label]


def parabola_minima(x: np.ndarray, y: np.ndarray, w_Rxn: np.ndarray) -> tuple:
    """Weighted quadratic fits y ~ c0 + c1 x + c2 x^2 per row of w; (x_min_R, y_min_R, coef_Rx3).

    x_min is nan when the parabola opens downward or fewer than 3 distinct x carry weight.
    """
    x0 = x.mean()
    X_nx3 = np.stack([np.ones_like(x), x - x0, (x - x0) ** 2], axis=1)
    XtX = np.einsum("rn,ni,nj->rij", w_Rxn, X_nx3, X_nx3)
    Xty = np.einsum("rn,ni,n->ri", w_Rxn, X_nx3, y)
    distinct = np.array([np.unique(x[row > 0]).size for row in w_Rxn])
    ok = distinct >= 3
    coef = np.full((w_Rxn.shape[0], 3), np.nan)
    coef[ok] = np.linalg.solve(XtX[ok], Xty[ok][:, :, None])[:, :, 0]
    c0, c1, c2 = coef.T
    with np.errstate(invalid="ignore", divide="ignore"):
        xm = np.where(c2 > 0, -c1 / (2 * c2), np.nan)
        ym = c0 + c1 * xm + c2 * xm**2
    # Back to the uncentred polynomial for plotting.
    coef_raw = np.stack([c0 - c1 * x0 + c2 * x0**2, c1 - 2 * c2 * x0, c2], axis=1)
    return xm + x0, ym, coef_raw


def _select_rows(logN: np.ndarray, loss: np.ndarray, k: int | None) -> np.ndarray:
    """Rows of the k distinct sizes nearest (in log N) the size with the lowest mean loss."""
    sizes = np.unique(logN)
    if k is None or k >= sizes.size:
        return np.ones(logN.size, dtype=bool)
    means = np.array([loss[logN == s].mean() for s in sizes])
    best = sizes[np.argmin(means)]
    keep = sizes[np.argsort(np.abs(sizes - best), kind="stable")[: max(k, 3)]]
    return np.isin(logN, keep)


def fit_approach2(
    points: pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    k_nearest: int | None = None,
    include_edge: bool = False,
    level: float = DEFAULT_LEVEL,
) -> Approach2Fit:
    """IsoFLOP parabolas per budget, then N_opt ~ C^a and D_opt ~ C^b over clean budgets."""
    budgets = budget_groups(points)
    weights = (
        grouped_resample_weights(budgets, n_boot, seed)
        if n_boot > 0
        else np.zeros((0, len(points)))
    )
    rows, boot_n, boot_d, warnings = [], [], [], []
    for C_b in np.unique(budgets):
        m = budgets == C_b
        g = points.loc[m]
        logN, logD, loss = (
            np.log(g["N"].to_numpy()),
            np.log(g["D"].to_numpy()),
            g["loss"].to_numpy(),
        )
        sizes = np.unique(logN)
        if sizes.size < 3:
            warnings.append(f"budget {C_b:.3g}: only {sizes.size} sizes, no parabola")
            continue
        sel = _select_rows(logN, loss, k_nearest)
        w_all = np.vstack([np.ones((1, m.sum())), weights[:, m]]) * sel[None, :]
        xn, ln_min, coef_n = parabola_minima(logN, loss, w_all)
        xd, _, coef_d = parabola_minima(logD, loss, w_all)
        means = pd.Series(loss).groupby(logN).mean()
        best_size = means.idxmin()
        used = np.unique(logN[sel])
        edge = (
            not np.isfinite(xn[0])
            or xn[0] <= used.min()
            or xn[0] >= used.max()
            or best_size in (used.min(), used.max())
        )
        if edge:
            warnings.append(
                f"budget {C_b:.3g}: IsoFLOP minimum at or beyond the edge of the sampled sizes "
                f"({np.exp(used.min()):.3g}..{np.exp(used.max()):.3g} params); "
                + (
                    "kept in the frontier fit (include_edge)"
                    if include_edge
                    else "left out of the frontier fit"
                )
            )
        rows.append(
            {
                "budget": float(C_b),
                "n_runs": int(m.sum()),
                "n_sizes": int(sizes.size),
                "sizes_used": int(used.size),
                "N_opt": float(np.exp(xn[0])),
                "D_opt": float(np.exp(xd[0])),
                "loss_opt": float(ln_min[0]),
                "N_opt_ci": list(percentile_ci(np.exp(xn[1:]), level)),
                "D_opt_ci": list(percentile_ci(np.exp(xd[1:]), level)),
                "edge": bool(edge),
                "in_frontier": bool(include_edge or not edge),
                "coef_logN": coef_n[0].tolist(),
                "coef_logD": coef_d[0].tolist(),
                "N_min_sampled": float(np.exp(used.min())),
                "N_max_sampled": float(np.exp(used.max())),
            }
        )
        boot_n.append(np.exp(xn[1:]))
        boot_d.append(np.exp(xd[1:]))
    table = pd.DataFrame(rows)
    if table.empty:
        raise FitError("Approach 2 needs budgets with 3+ model sizes each; none found")
    use = (
        table["in_frontier"] & np.isfinite(table["N_opt"]) & np.isfinite(table["D_opt"])
    ).to_numpy()
    if use.sum() < 2:
        raise FitError(
            f"Approach 2 needs 2+ budgets with an interior IsoFLOP minimum; got {int(use.sum())} "
            "(widen the size ladder around the optimum, or pass include_edge)"
        )
    C = table["budget"].to_numpy()[use]
    a, lkN = loglog_fit(C, table["N_opt"].to_numpy()[use][None, :])
    b, lkD = loglog_fit(C, table["D_opt"].to_numpy()[use][None, :])
    fit = Approach2Fit(
        table,
        float(a[0]),
        float(b[0]),
        float(lkN[0]),
        float(lkD[0]),
        warnings=warnings,
        level=level,
    )
    if n_boot > 0:
        nb = np.stack(boot_n, axis=1)[:, use]
        db = np.stack(boot_d, axis=1)[:, use]
        sa, skN = loglog_fit(C, nb)
        sb, skD = loglog_fit(C, db)
        fit.samples = {"a": sa, "b": sb, "log_kN": skN, "log_kD": skD}
        fit.ci = {"a": list(percentile_ci(sa, level)), "b": list(percentile_ci(sb, level))}
        bad = int(np.sum(~np.isfinite(nb).all(axis=1)))
        fit.diagnostics["bootstrap"] = {
            "resamples": n_boot,
            "seed": seed,
            "with_invalid_budget": bad,
        }
    fit.diagnostics["budgets_in_frontier"] = int(use.sum())
    fit.diagnostics["k_nearest"] = k_nearest
    return fit
