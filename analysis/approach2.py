"""Approach 2: IsoFLOP profiles. At each budget, a parabola of loss in log N (and in log D);
its minimum gives N_opt(C), D_opt(C); power laws N_opt ~ C^a, D_opt ~ C^b across budgets.

A minimum at or beyond the edge of the sampled sizes is flagged and left out of the
frontier fit (an extrapolated vertex is not a measurement). Over a wide size range the
profile is not a parabola (the few-step side is steeper), so `k_nearest` fits only the k
sizes nearest the best one. Seeds are averaged: the parabola is a least-squares fit over
all runs, so repeated seeds at one size weigh as their mean.

Intervals: a fixed-design residual bootstrap. The sizes of an IsoFLOP study are chosen, not
sampled, so resampling runs (which drops sizes, and with 3 sizes refits the same parabola
every time) answers the wrong question. Instead each budget's parabola keeps its sizes and
gets its own studentised residuals, resampled, added back (a budget whose parabola has no
residual degrees of freedom borrows the residuals of all budgets). A budget with 3 sizes or
fewer gets no interval (3 points fix a parabola, nothing checks it), nor does one whose
resamples lack a minimum more often than one tail of the interval holds (`percentile_ci`);
the share of such resamples is in the budgets table (`boot_invalid`) and the diagnostics. A
resample in which a frontier budget has no minimum fits its frontier line without it.

Compute: runs are grouped by their nominal budget (the sweep's `budget` column, else
clusters of C), but the frontier N_opt ~ C^a is fitted against the chosen convention's C at
each budget's optimum (`C_opt`: the runs' own C, interpolated in log N at N_opt), not against
the nominal budget. The runs of one nominal budget differ in C under any convention but the
one the sweep planned with (the detailed count adds attention, a larger share of a small
model's FLOPs; 6 N_nonemb D counts embeddings out), so the optimum of a budget costs a
different C in each convention, and a follows the convention asked for. Each resample's
frontier uses the C at that resample's own N_opt.

What this measures under a count other than the sweep's own: the sweep's minima (along its
lines of constant nominal budget) priced in that count, not the optimum along lines of
constant C in that count. The two differ where C / (N D) changes with N: on a known L(N, D)
with the CPU studies' attention share, the detailed count moves this a by +0.010 while the
true optimum under that count moves by -0.008 (tests/test_study_data.py, the known surface).
`cost_optimum` re-optimises Approach 3's L(N, D) under the count instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.allocation import AllocationLaw
from analysis.bootstrap import DEFAULT_LEVEL, ci_dict, invalid_fraction, percentile_ci
from analysis.errors import FitError
from analysis.powerlaw import loglog_fit


@dataclass(kw_only=True)
class Approach2Fit(AllocationLaw):
    """Per-budget minima (`budgets`), the frontier power laws and their bootstrap."""

    budgets: pd.DataFrame


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


def log_c_at(logN: np.ndarray, logC: np.ndarray, x: np.ndarray, extend: bool = False) -> np.ndarray:
    """log C at log N = x along one budget's runs: piecewise linear through each size's mean
    log C; beyond the end sizes held at their C, or extended linearly if `extend` (nan where
    x is nan).

    Held by default: a resample whose vertex lands far outside the sampled sizes would
    otherwise get a C far outside the budget's own runs, and that noise in x alone widened
    Approach 2's interval on the Chinchilla data from [0.488, 0.571] to [0.27, 0.56]."""
    sizes, which = np.unique(logN, return_inverse=True)
    means = np.bincount(which, weights=logC) / np.bincount(which)
    x = np.asarray(x, dtype=float)
    if sizes.size == 1:
        return np.where(np.isfinite(x), means[0], np.nan)
    inside = np.where(np.isfinite(x), np.interp(x, sizes, means), np.nan)
    if not extend:
        return inside
    lo = means[0] + (means[1] - means[0]) / (sizes[1] - sizes[0]) * (x - sizes[0])
    hi = means[-1] + (means[-1] - means[-2]) / (sizes[-1] - sizes[-2]) * (x - sizes[-1])
    return np.where(x < sizes[0], lo, np.where(x > sizes[-1], hi, inside))


def _design(x: np.ndarray, x0: float) -> np.ndarray:
    return np.stack([np.ones_like(x), x - x0, (x - x0) ** 2], axis=-1)


def parabola_minima(x: np.ndarray, y: np.ndarray, w_Rxn: np.ndarray) -> tuple:
    """Weighted quadratic fits y ~ c0 + c1 x + c2 x^2 per row of w; (x_min_R, y_min_R, coef_Rx3).

    `y` is one vector shared by every row of w, or one vector per row (R x n). x_min is nan
    when the parabola opens downward or fewer than 3 distinct x carry weight.
    """
    x0 = x.mean()
    X_nx3 = _design(x, x0)
    y_Rxn = np.broadcast_to(y, w_Rxn.shape)
    XtX = np.einsum("rn,ni,nj->rij", w_Rxn, X_nx3, X_nx3)
    Xty = np.einsum("rn,ni,rn->ri", w_Rxn, X_nx3, y_Rxn)
    values, which = np.unique(x, return_inverse=True)
    onehot_nxU = np.zeros((x.size, values.size))
    onehot_nxU[np.arange(x.size), which] = 1.0
    distinct = ((w_Rxn > 0) @ onehot_nxU > 0).sum(axis=1)  # distinct x with weight, per row
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


def studentized_residuals(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fitted values of the least-squares parabola and residuals / sqrt(1 - leverage).

    The scaling makes residuals of high-leverage points (the edges of the size ladder) as
    large as the noise that produced them. A point the parabola must pass through (leverage
    1, e.g. every point when there are only 3) tells nothing about noise: nan.
    """
    X_nx3 = _design(x, x.mean())
    coef, *_ = np.linalg.lstsq(X_nx3, y, rcond=None)
    fitted = X_nx3 @ coef
    h = np.einsum("ni,ij,nj->n", X_nx3, np.linalg.pinv(X_nx3.T @ X_nx3), X_nx3)
    free = 1.0 - h
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(free > 1e-8, (y - fitted) / np.sqrt(np.abs(free)), np.nan)
    return fitted, r


def _select_rows(logN: np.ndarray, loss: np.ndarray, k: int | None) -> np.ndarray:
    """Rows of the k distinct sizes nearest (in log N) the size with the lowest mean loss."""
    sizes = np.unique(logN)
    if k is None or k >= sizes.size:
        return np.ones(logN.size, dtype=bool)
    means = np.array([loss[logN == s].mean() for s in sizes])
    best = sizes[np.argmin(means)]
    keep = sizes[np.argsort(np.abs(sizes - best), kind="stable")[: max(k, 3)]]
    return np.isin(logN, keep)


def _budget_interval(
    C_b: float, x_boot: np.ndarray, point: float, sizes_used: int, level: float, warnings: list
) -> list[float] | None:
    """Percentile interval of one budget's bootstrap vertices, or None with the reason."""
    if sizes_used <= 3 or not np.isfinite(point):
        return None  # 3 points fix a parabola exactly; no minimum, no interval
    lo, hi = percentile_ci(x_boot, level)
    if not np.isfinite(lo):
        warnings.append(
            f"budget {C_b:.3g}: no N_opt interval: {100 * invalid_fraction(x_boot):.0f}% of "
            "resamples give a parabola without a minimum"
        )
        return None
    return [lo, hi]


@dataclass
class IsoflopMinima:
    """Per-budget parabola minima and their bootstrap vertices (before the frontier fit)."""

    table: pd.DataFrame
    boot_n: list[np.ndarray]
    boot_d: list[np.ndarray]
    boot_c: list[np.ndarray]  # the convention's C at each resample's N_opt
    warnings: list[str]
    pool: np.ndarray
    boot: int


def isoflop_minima(
    points: pd.DataFrame,
    n_boot: int = 0,
    seed: int = 0,
    k_nearest: int | None = None,
    include_edge: bool = False,
    level: float = DEFAULT_LEVEL,
) -> IsoflopMinima:
    """Every budget's IsoFLOP parabola and its minimum (flagged `edge` when not bracketed)."""
    budgets = budget_groups(points)
    groups, warnings = [], []
    for C_b in np.unique(budgets):
        m = budgets == C_b
        g = points.loc[m]
        logN, logD, logC, loss = (
            np.log(g["N"].to_numpy(dtype=float)),
            np.log(g["D"].to_numpy(dtype=float)),
            np.log(g["C"].to_numpy(dtype=float)),
            g["loss"].to_numpy(dtype=float),
        )
        sizes = np.unique(logN)
        if sizes.size < 3:
            warnings.append(f"budget {C_b:.3g}: only {sizes.size} sizes, no parabola")
            continue
        sel = _select_rows(logN, loss, k_nearest)
        fitted, resid = studentized_residuals(logN[sel], loss[sel])
        groups.append((C_b, m, logN, logD, logC, loss, sizes, sel, fitted, resid))
    if not groups:
        raise FitError("Approach 2 needs budgets with 3+ model sizes each; none found")
    pool = np.concatenate([grp[-1] for grp in groups])
    pool = pool[np.isfinite(pool)]
    if n_boot > 0 and pool.size == 0:
        warnings.append(
            "Approach 2: no budget has more runs than a parabola has coefficients, so there is "
            "no residual to resample; no intervals"
        )
    boot = n_boot if pool.size else 0
    rng = np.random.default_rng(seed)
    rows, boot_n, boot_d, boot_c = [], [], [], []
    # A resample's vertex far outside the sizes overflows exp to inf: an invalid resample,
    # counted as such (`percentile_ci`), not a RuntimeWarning on the analyst's terminal.
    with np.errstate(over="ignore"):
        for C_b, m, logN, logD, logC, loss, sizes, sel, fitted, resid in groups:
            xn, ln_min, coef_n = parabola_minima(logN, loss, sel[None, :].astype(float))
            xd, _, coef_d = parabola_minima(logD, loss, sel[None, :].astype(float))
            xn_b = xd_b = np.zeros(0)
            if boot:
                own = resid[np.isfinite(resid)]
                draw = own - own.mean() if own.size else pool - pool.mean()
                y_star = fitted[None, :] + draw[rng.integers(0, draw.size, size=(boot, sel.sum()))]
                ones = np.ones((boot, sel.sum()))
                xn_b = parabola_minima(logN[sel], y_star, ones)[0]
                xd_b = parabola_minima(logD[sel], y_star, ones)[0]
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
            n_ci = d_ci = None
            if boot:
                n_ci = _budget_interval(C_b, np.exp(xn_b), xn[0], used.size, level, warnings)
                d_ci = _budget_interval(C_b, np.exp(xd_b), xd[0], used.size, level, [])
            rows.append(
                {
                    "budget": float(C_b),
                    "n_runs": int(m.sum()),
                    "n_sizes": int(sizes.size),
                    "sizes_used": int(used.size),
                    "C_opt": float(np.exp(log_c_at(logN, logC, xn)[0])),
                    "N_opt": float(np.exp(xn[0])),
                    "D_opt": float(np.exp(xd[0])),
                    "loss_opt": float(ln_min[0]),
                    "N_opt_ci": n_ci,
                    "D_opt_ci": d_ci,
                    "boot_invalid": invalid_fraction(xn_b) if boot else None,
                    "edge": bool(edge),
                    "in_frontier": bool(include_edge or not edge),
                    "coef_logN": coef_n[0].tolist(),
                    "coef_logD": coef_d[0].tolist(),
                    "N_min_sampled": float(np.exp(used.min())),
                    "N_max_sampled": float(np.exp(used.max())),
                }
            )
            boot_n.append(np.exp(xn_b))
            boot_d.append(np.exp(xd_b))
            boot_c.append(np.exp(log_c_at(logN, logC, xn_b)))
    return IsoflopMinima(pd.DataFrame(rows), boot_n, boot_d, boot_c, warnings, pool, boot)


def fit_approach2(
    points: pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    k_nearest: int | None = None,
    include_edge: bool = False,
    level: float = DEFAULT_LEVEL,
) -> Approach2Fit:
    """IsoFLOP parabolas per budget, then N_opt ~ C^a and D_opt ~ C^b over clean budgets.

    Runs are grouped by nominal budget; each law is fitted against `C_opt`, the points' own C
    (the chosen FLOP convention) at the budget's optimum, so `--flops` moves a and b (module
    docstring). Intervals come from a fixed-design residual bootstrap (module docstring); a budget with
    3 sizes or fewer, or whose resamples too often have no minimum, gets no interval.
    """
    m = isoflop_minima(points, n_boot, seed, k_nearest, include_edge, level)
    table, warnings, pool, boot = m.table, m.warnings, m.pool, m.boot
    use = (
        table["in_frontier"] & np.isfinite(table["N_opt"]) & np.isfinite(table["D_opt"])
    ).to_numpy()
    if use.sum() < 2:
        raise FitError(
            f"Approach 2 needs 2+ budgets with an interior IsoFLOP minimum; got {int(use.sum())} "
            "(widen the size ladder around the optimum, or pass include_edge)"
        )
    C = table["C_opt"].to_numpy()[use]
    a, lkN = loglog_fit(C, table["N_opt"].to_numpy()[use][None, :])
    b, lkD = loglog_fit(C, table["D_opt"].to_numpy()[use][None, :])
    fit = Approach2Fit(
        budgets=table,
        a=float(a[0]),
        b=float(b[0]),
        log_kN=float(lkN[0]),
        log_kD=float(lkD[0]),
        warnings=warnings,
        level=level,
    )
    if boot:
        nb = np.stack(m.boot_n, axis=1)[:, use]
        db = np.stack(m.boot_d, axis=1)[:, use]
        cb = np.stack(m.boot_c, axis=1)[:, use]
        # A budget without a minimum in some resample (in N or in D) is left out of that
        # resample's frontier line, in both laws alike; how often is reported, and a budget
        # that fails too often has no interval of its own (see `_budget_interval`).
        with np.errstate(invalid="ignore"):
            ok_RxB = (
                np.isfinite(nb) & np.isfinite(db) & (nb > 0) & (db > 0) & np.isfinite(cb) & (cb > 0)
            )
        nb, db = np.where(ok_RxB, nb, np.nan), np.where(ok_RxB, db, np.nan)
        cb = np.where(ok_RxB, cb, C[None, :])  # finite x for the rows left out (weight 0)
        bad = ~ok_RxB.all(axis=1)
        sa, skN = loglog_fit(cb, nb)
        sb, skD = loglog_fit(cb, db)
        fit.samples = {"a": sa, "b": sb, "log_kN": skN, "log_kD": skD}
        fit.ci = {
            k: ci for k, ci in ci_dict({"a": sa, "b": sb}, level).items() if np.isfinite(ci[0])
        }
        if bad.mean() > (1 - level) / 2:
            warnings.append(
                f"Approach 2: in {100 * bad.mean():.0f}% of resamples a frontier budget had no "
                "minimum and was left out of that resample's frontier line"
            )
        if len(fit.ci) < 2:
            warnings.append(
                f"Approach 2: no interval for a, b: {100 * bad.mean():.0f}% of resamples have a "
                "frontier budget without a minimum"
            )
        fit.diagnostics["bootstrap"] = {
            "method": "residual (fixed sizes; studentised parabola residuals pooled over budgets)",
            "resamples": n_boot,
            "seed": seed,
            "pooled_residuals": int(pool.size),
            "residual_sd": float(pool.std(ddof=1)) if pool.size > 1 else None,
            "invalid_fraction_frontier": float(bad.mean()),
            "invalid_fraction_by_budget": {
                f"{b:.4g}": v for b, v in zip(table["budget"], table["boot_invalid"], strict=True)
            },
        }
    fit.diagnostics["budgets_in_frontier"] = int(use.sum())
    fit.diagnostics["k_nearest"] = k_nearest
    return fit
