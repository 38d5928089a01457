"""Approach 1: the lower envelope of training curves (Hoffmann et al. 2022, Sec. 3.1).

Every run's loss is interpolated (linear in log C) on a common log-spaced FLOP grid; at
each grid value the run with the lowest loss gives N_opt(C) and D_opt(C); power laws
N_opt ~ C^a and D_opt ~ C^b are fitted through those points. Grid values where the winner
is the smallest or the largest model in the data are censored (the true optimum may lie
beyond the sampled sizes) and left out of the fit. The bootstrap resamples whole runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.allocation import AllocationLaw
from analysis.bootstrap import DEFAULT_LEVEL, ci_dict, resample_weights
from analysis.errors import FitError
from analysis.powerlaw import loglog_fit


@dataclass(kw_only=True)
class Approach1Fit(AllocationLaw):
    """Envelope points, N_opt ~ C^a and D_opt ~ C^b with bootstrap intervals."""

    envelope: pd.DataFrame  # C, loss, N, D, run_id, censored


def _interpolated(curves: pd.DataFrame, grid_G: np.ndarray) -> tuple:
    """Per run: loss and log D on the grid (inf / nan outside the run's FLOP range)."""
    lg = np.log(grid_G)
    runs, loss_RxG, logD_RxG, N_R = [], [], [], []
    for run_id, g in curves.groupby("run_id", sort=True):
        g = g.sort_values("C")
        if len(g) < 2:
            continue
        lc = np.log(g["C"].to_numpy())
        inside = (lg >= lc[0]) & (lg <= lc[-1])
        loss_RxG.append(np.where(inside, np.interp(lg, lc, g["loss"].to_numpy()), np.inf))
        logD_RxG.append(np.where(inside, np.interp(lg, lc, np.log(g["D"].to_numpy())), np.nan))
        runs.append(run_id)
        N_R.append(float(g["N"].iloc[0]))
    return np.array(runs), np.array(loss_RxG), np.array(logD_RxG), np.array(N_R)


def fit_approach1(
    curves: pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    n_grid: int = 40,
    level: float = DEFAULT_LEVEL,
) -> Approach1Fit:
    """Envelope of `curves` (run_id, N, D, C, loss per evaluation) and its power laws."""
    if curves is None or curves.empty:
        raise FitError(
            "Approach 1 needs training curves (intermediate evaluations); none in the data"
        )
    grid_G = np.logspace(np.log10(curves["C"].min()), np.log10(curves["C"].max()), n_grid)
    grid_G[[0, -1]] = curves["C"].min(), curves["C"].max()  # no rounding past the data's ends
    runs, loss_RxG, logD_RxG, N_R = _interpolated(curves, grid_G)
    if runs.size < 2 or np.unique(N_R).size < 3:
        raise FitError("Approach 1 needs curves of 3+ model sizes with 2+ evaluations each")
    n_min, n_max = N_R.min(), N_R.max()

    def envelope(w_R: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        masked = np.where(w_R[:, None] > 0, loss_RxG, np.inf)
        best = np.argmin(masked, axis=0)
        cols = np.arange(grid_G.size)
        ok = np.isfinite(masked[best, cols])
        N_G = np.where(ok, N_R[best], np.nan)
        present = N_R[w_R > 0]
        ok &= (present.min() < N_G) & (present.max() > N_G)
        return np.where(ok, N_G, np.nan), np.where(ok, np.exp(logD_RxG[best, cols]), np.nan), best

    N_G, D_G, best = envelope(np.ones(runs.size))
    env = pd.DataFrame(
        {
            "C": grid_G,
            "loss": loss_RxG[best, np.arange(grid_G.size)],
            "N": N_R[best],
            "D": np.exp(logD_RxG[best, np.arange(grid_G.size)]),
            "run_id": runs[best],
            "censored": ~np.isfinite(N_G),
        }
    )
    env = env.loc[np.isfinite(env["loss"])].reset_index(drop=True)
    use = np.isfinite(N_G)
    if np.unique(N_G[use]).size < 2:
        raise FitError(
            "Approach 1: the envelope is won by fewer than two interior model sizes; "
            "train more sizes or longer curves"
        )
    a, lkN = loglog_fit(grid_G, N_G[None, :])
    b, lkD = loglog_fit(grid_G, D_G[None, :])
    fit = Approach1Fit(
        envelope=env,
        a=float(a[0]),
        b=float(b[0]),
        log_kN=float(lkN[0]),
        log_kD=float(lkD[0]),
        level=level,
    )
    censored = int(np.sum(~use & np.isfinite(loss_RxG[best, np.arange(grid_G.size)])))
    if censored:
        fit.warnings.append(
            f"{censored} of {grid_G.size} FLOP grid values won by the smallest or largest model "
            f"({n_min:.3g} or {n_max:.3g} params): censored, left out of the fit"
        )
    fit.diagnostics = {
        "runs": int(runs.size),
        "grid_points_used": int(use.sum()),
        "sizes": int(np.unique(N_R).size),
    }
    if n_boot > 0:
        W = resample_weights(runs.size, n_boot, seed)
        NB, DB = np.empty((n_boot, grid_G.size)), np.empty((n_boot, grid_G.size))
        for r in range(n_boot):
            NB[r], DB[r], _ = envelope(W[r])
        sa, skN = loglog_fit(grid_G, NB)
        sb, skD = loglog_fit(grid_G, DB)
        fit.samples = {"a": sa, "b": sb, "log_kN": skN, "log_kD": skD}
        fit.ci = ci_dict({"a": sa, "b": sb}, level)
        fit.diagnostics["bootstrap"] = {"resamples": n_boot, "seed": seed}
    return fit
