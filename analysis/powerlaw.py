"""Power laws y = k x^p fitted as lines in log-log space, and the frontier L(C) = E + (C0/C)^g.

`loglog_fit` solves many weighted problems at once (one per bootstrap weight vector), so
bootstraps cost one batched 2x2 solve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from analysis.errors import FitError


@dataclass(frozen=True)
class PowerLaw:
    """y = coef * x^exponent."""

    coef: float
    exponent: float

    def __call__(self, x: np.ndarray | float) -> np.ndarray:
        return self.coef * np.asarray(x, dtype=float) ** self.exponent


def loglog_fit(x: np.ndarray, y_Rxn: np.ndarray, w_Rxn: np.ndarray | None = None) -> tuple:
    """Weighted line fits of log y on log x, one per row; returns (exponent_R, log_coef_R).

    Rows whose weights cover fewer than two distinct x get nan.
    """
    lx = np.log(np.asarray(x, dtype=float))
    ly = np.log(np.atleast_2d(np.asarray(y_Rxn, dtype=float)))
    if w_Rxn is None:
        w_Rxn = np.ones_like(ly)
    w = np.where(np.isfinite(ly), np.atleast_2d(w_Rxn), 0.0)
    if lx.ndim == 1:
        lx = np.broadcast_to(lx, ly.shape)
    ly = np.where(np.isfinite(ly), ly, 0.0)
    sw = w.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = (w * lx).sum(1) / sw, (w * ly).sum(1) / sw
        sxx = (w * (lx - mx[:, None]) ** 2).sum(1)
        sxy = (w * (lx - mx[:, None]) * (ly - my[:, None])).sum(1)
        slope = np.where(sxx > 1e-12 * np.maximum(sw, 1), sxy / sxx, np.nan)
    return slope, my - slope * mx


def fit_power_law(x: np.ndarray, y: np.ndarray) -> PowerLaw:
    """One unweighted log-log fit; needs two distinct positive x."""
    if np.unique(np.asarray(x)).size < 2:
        raise FitError("a power law needs points at two or more distinct x values")
    slope, icpt = loglog_fit(x, np.asarray(y)[None, :])
    return PowerLaw(float(np.exp(icpt[0])), float(slope[0]))


@dataclass(frozen=True)
class SaturatingPowerLaw:
    """L(C) = E + (C0 / C)^gamma, the loss-vs-compute frontier with an irreducible term."""

    E: float
    C0: float
    gamma: float

    def __call__(self, C: np.ndarray | float) -> np.ndarray:
        return self.E + (self.C0 / np.asarray(C, dtype=float)) ** self.gamma


def fit_saturating(
    C: np.ndarray, L: np.ndarray, start: SaturatingPowerLaw | None = None
) -> SaturatingPowerLaw | None:
    """Least squares on log L over (E, log C0, gamma); None when it cannot be identified.

    Without `start`, four starts (E at 0, 50, 80, 95% of the lowest loss); with it, one.
    """
    C, L = np.asarray(C, dtype=float), np.asarray(L, dtype=float)
    ok = np.isfinite(L)
    C, L = C[ok], L[ok]
    if C.size < 4 or np.unique(C).size < 4:
        return None
    lc, ll = np.log(C), np.log(L)

    def resid(p: np.ndarray) -> np.ndarray:
        E, lc0, g = p
        return np.log(E + np.exp(g * (lc0 - lc))) - ll

    plain = fit_power_law(C, L)
    if start is not None:
        starts = [(min(start.E, 0.999 * L.min()), np.log(start.C0), start.gamma)]
    else:
        starts = []
        for frac in (0.0, 0.5, 0.8, 0.95):
            g0 = max(-plain.exponent, 0.02)
            lc0 = float(np.mean(lc + np.log(np.maximum(L - frac * L.min(), 1e-9 * L)) / g0))
            starts.append((frac * L.min(), lc0, g0))
    best = None
    for E0, lc0, g0 in starts:
        try:
            r = least_squares(
                resid, [E0, lc0, g0], bounds=([0.0, -np.inf, 1e-4], [L.min(), np.inf, 5.0])
            )
        except ValueError:
            continue
        if best is None or r.cost < best.cost:
            best = r
    if best is None or not best.success:
        return None
    E, lc0, g = best.x
    return SaturatingPowerLaw(float(E), float(np.exp(lc0)), float(g))
