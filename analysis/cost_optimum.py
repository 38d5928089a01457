"""Approach 3's compute-optimal N when C is not proportional to N D.

a = beta / (alpha + beta) assumes C = k N D with one k. Under the detailed count (attention
is a larger share of a small model's FLOPs) or 6 N_total D with non-embedding N, the FLOPs
per parameter-token k(N) = C / (N D) depend on the model, so the optimum of the same fitted
L(N, D) moves differently with C. Here k(N) is read from the runs themselves (each size's
mean log k, piecewise linear in log N, as `approach2.log_c_at`), N_opt(C) minimises
L(N, C / (k(N) N)) over N at each of the sweep's budgets, and the local exponent is the slope
of log N_opt against log C over those budgets, with a bootstrap interval from Approach 3's
own resamples. With a constant k it equals beta / (alpha + beta).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.approach2 import log_c_at
from analysis.approach3 import Approach3Fit
from analysis.bootstrap import percentile_ci
from analysis.powerlaw import loglog_fit
from analysis.surface import param_array

GRID_POINTS = 801  # in ln N, from 2 e-folds below the smallest size to 2 above the largest
CHUNK = 256  # resamples per block (memory: CHUNK x budgets x GRID_POINTS floats)


@dataclass
class CostOptimum:
    """N_opt at each budget under the runs' own FLOPs per parameter-token, and its slope."""

    a: float
    ci: list[float] | None
    budgets: list[float]
    n_opt: list[float]


def _n_opt(p_Rx5: np.ndarray, C_B: np.ndarray, grid: np.ndarray, logk: np.ndarray) -> np.ndarray:
    """ln N_opt (R x B): the grid minimum of L(N, C / (k N)), refined by a parabola through
    it and its neighbours (nan where the minimum is at the grid's edge)."""
    E, A, B, alpha, beta = (p_Rx5[:, i, None, None] for i in range(5))
    logD = np.log(C_B)[None, :, None] - logk[None, None, :] - grid[None, None, :]
    with np.errstate(over="ignore", invalid="ignore"):
        L = E + A * np.exp(-alpha * grid[None, None, :]) + B * np.exp(-beta * logD)
    L = np.where(np.isfinite(L), L, np.inf)
    i = np.argmin(L, axis=2)
    inner = (i > 0) & (i < grid.size - 1)
    j = np.clip(i, 1, grid.size - 2)
    lm, l0, lp = (np.take_along_axis(L, (j + s)[..., None], axis=2)[..., 0] for s in (-1, 0, 1))
    h = grid[1] - grid[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(lm - 2 * l0 + lp > 0, 0.5 * h * (lm - lp) / (lm - 2 * l0 + lp), 0.0)
    return np.where(inner, grid[j] + shift, np.nan)


def cost_optimum(
    fit: Approach3Fit, points: pd.DataFrame, budgets: tuple[float, ...]
) -> CostOptimum | None:
    """The local exponent of Approach 3's N_opt under the points' C, over `budgets` (2+)."""
    if len(budgets) < 2:
        return None
    logN = np.log(points["N"].to_numpy(dtype=float))
    logk = np.log(points["C"].to_numpy(dtype=float)) - logN - np.log(points["D"].to_numpy(float))
    grid = np.linspace(logN.min() - 2, logN.max() + 2, GRID_POINTS)
    k_grid = log_c_at(logN, logk, grid, extend=True)
    C_B = np.asarray(budgets, dtype=float)
    point = _n_opt(param_array(fit.params)[None, :], C_B, grid, k_grid)
    a, _ = loglog_fit(C_B, np.exp(point))
    ci = None
    if fit.samples is not None and len(fit.samples):
        blocks = [
            _n_opt(fit.samples[s : s + CHUNK], C_B, grid, k_grid)
            for s in range(0, len(fit.samples), CHUNK)
        ]
        sa, _ = loglog_fit(C_B, np.exp(np.concatenate(blocks)))
        lo, hi = percentile_ci(sa, fit.level)
        ci = [float(lo), float(hi)] if np.isfinite(lo) else None
    return CostOptimum(float(a[0]), ci, [float(c) for c in C_B], np.exp(point[0]).tolist())
