"""Fit the data-constrained law L(N, D, U) (`analysis.repetition`) to runs, with a bootstrap.

Objective as Approach 3: Huber (delta 1e-3) on log residuals, here by scipy's
`least_squares(loss="huber")` over (log E, log A, log B, alpha, beta, log R_D*, log R_N*),
from a grid of starts whose surface parameters come from Approach 3 on the effective data
of each start's R_D*. Any parameter can be held fixed (`fixed={"R_N_star": 5.31}`): with
one pool size and a handful of sizes R_N* is weakly identified, and fixing it at the
published value is how the lab's own R_D* is reported. Bootstrap: runs resampled with
replacement (seeded), each resample refitted from the point estimate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

from analysis import repetition
from analysis.approach3 import fit_approach3
from analysis.bootstrap import DEFAULT_LEVEL, ci_dict
from analysis.errors import FitError
from analysis.huber_newton import HUBER_DELTA
from analysis.surface import param_array

LOG_PARAMS = {"E", "A", "B", "R_D_star", "R_N_star"}  # fitted as logs (positive)
R_STAR_BOUNDS = (0.05, 1e3)  # repetitions; an estimate at a bound is not determined by the data
LOG_COEF_BOUNDS = (-7.0, 25.0)  # log E, log A, log B: keeps a degenerate resample finite


@dataclass
class RepetitionFit:
    """Point estimate, bootstrap samples (R x 7) and diagnostics of L(N, D, U)."""

    params: dict[str, float]
    n_points: int
    fixed: dict[str, float]
    ci: dict[str, list[float]] = field(default_factory=dict)
    samples: np.ndarray | None = None
    diagnostics: dict[str, object] = field(default_factory=dict)
    level: float = DEFAULT_LEVEL

    def array(self) -> np.ndarray:
        return np.array([self.params[k] for k in repetition.DC_NAMES], dtype=float)

    def predict(self, N, D, U) -> np.ndarray:
        return repetition.loss(self.array(), N, D, U)


def _to_theta(p7: np.ndarray) -> np.ndarray:
    return np.array(
        [np.log(v) if k in LOG_PARAMS else v for k, v in zip(repetition.DC_NAMES, p7, strict=True)]
    )


def _to_params(theta: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.array(
            [
                np.exp(v) if k in LOG_PARAMS else v
                for k, v in zip(repetition.DC_NAMES, theta, strict=True)
            ]
        )


class _Problem:
    """Residuals of the free parameters, the fixed ones filled in."""

    def __init__(self, N, D, U, loss, fixed: Mapping[str, float], delta: float) -> None:
        self.N, self.D, self.U = N, D, U
        self.logL = np.log(loss)
        self.delta = delta
        self.fixed_theta = _to_theta(
            np.array([fixed.get(k, 1.0) for k in repetition.DC_NAMES], dtype=float)
        )
        self.free = np.array([k not in fixed for k in repetition.DC_NAMES])
        lo = np.full(7, -np.inf)
        hi = np.full(7, np.inf)
        lo[:3], hi[:3] = LOG_COEF_BOUNDS
        for i in (5, 6):
            lo[i], hi[i] = np.log(R_STAR_BOUNDS[0]), np.log(R_STAR_BOUNDS[1])
        lo[3:5], hi[3:5] = 0.01, 3.0
        self.bounds = (lo[self.free], hi[self.free])

    def full(self, x: np.ndarray) -> np.ndarray:
        theta = self.fixed_theta.copy()
        theta[self.free] = x
        return theta

    def residuals(self, x: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        p = _to_params(self.full(x))
        sel = slice(None) if idx is None else idx
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            r = np.log(repetition.loss(p, self.N[sel], self.D[sel], self.U[sel])) - self.logL[sel]
        return np.where(np.isfinite(r), r, 1e3)

    def solve(self, x0: np.ndarray, idx: np.ndarray | None = None):
        x0 = np.clip(x0, self.bounds[0] + 1e-9, self.bounds[1] - 1e-9)
        return least_squares(
            self.residuals,
            x0,
            args=(idx,),
            bounds=self.bounds,
            loss="huber",
            f_scale=self.delta,
            x_scale="jac",
            max_nfev=4000,
        )


def _starts(N, D, U, loss, fixed: Mapping[str, float]) -> list[np.ndarray]:
    """Surface from Approach 3 on D' of each trial R_D* (R_N* = 5 there), x each R_N*."""
    out = []
    for rd in (2.0, 8.0, 30.0, 200.0):
        rd = fixed.get("R_D_star", rd)
        d_eff = repetition.decayed(np.minimum(U, D), D / np.minimum(U, D) - 1.0, rd)
        try:
            base = param_array(fit_approach3(N, d_eff, loss, n_boot=0).params)
        except FitError:
            continue
        for rn in (1.0, 5.0, 50.0):
            p = np.concatenate([base, [rd, fixed.get("R_N_star", rn)]])
            for k, v in fixed.items():
                p[repetition.DC_NAMES.index(k)] = v
            out.append(p)
    return out


def fit_repetition(
    N,
    D,
    U,
    loss,
    n_boot: int = 500,
    seed: int = 0,
    fixed: Mapping[str, float] | None = None,
    delta: float = HUBER_DELTA,
    level: float = DEFAULT_LEVEL,
) -> RepetitionFit:
    """Fit (E, A, B, alpha, beta, R_D*, R_N*) to runs of N params, D tokens, U unique tokens."""
    N, D, U, loss = (np.asarray(v, dtype=float) for v in (N, D, U, loss))
    U = np.broadcast_to(U, N.shape).astype(float)
    fixed = dict(fixed or {})
    unknown = set(fixed) - set(repetition.DC_NAMES)
    if unknown:
        raise FitError(f"unknown fixed parameter(s) {sorted(unknown)}; use {repetition.DC_NAMES}")
    n_free = 7 - len(fixed)
    if N.size <= n_free:
        raise FitError(f"{n_free} free parameters need more than {n_free} runs; got {N.size}")
    if not np.any(D > U):
        raise FitError("no run repeats its data (every D <= U): R_D* cannot be measured")
    prob = _Problem(N, D, U, loss, fixed, delta)
    best = None
    for p0 in _starts(N, D, U, loss, fixed):
        res = prob.solve(_to_theta(p0)[prob.free])
        if best is None or res.cost < best.cost:
            best = res
    if best is None:
        raise FitError("the data-constrained fit found no starting surface (Approach 3 failed)")
    p = _to_params(prob.full(best.x))
    fit = RepetitionFit(
        params=dict(zip(repetition.DC_NAMES, map(float, p), strict=True)),
        n_points=int(N.size),
        fixed=fixed,
        level=level,
    )
    r = prob.residuals(best.x)
    at_bound = [
        k
        for k in ("R_D_star", "R_N_star")
        if k not in fixed and not R_STAR_BOUNDS[0] * 1.01 < fit.params[k] < R_STAR_BOUNDS[1] / 1.01
    ]
    fit.diagnostics = {
        "rms_log_residual": float(np.sqrt(np.mean(r**2))),
        "huber_delta": delta,
        "converged": bool(best.success),
        "epochs_range": [float((D / U).min()), float((D / U).max())],
        "at_bound": at_bound,
        "warnings": [f"{k} ran to its bound {R_STAR_BOUNDS}: not determined" for k in at_bound],
    }
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        rows = []
        for _ in range(n_boot):
            idx = rng.integers(0, N.size, N.size)
            res = prob.solve(best.x, idx)
            rows.append(_to_params(prob.full(res.x)) if res.success else np.full(7, np.nan))
        fit.samples = np.array(rows)
        fit.ci = ci_dict(
            {k: fit.samples[:, i] for i, k in enumerate(repetition.DC_NAMES) if k not in fixed},
            level,
        )
        fit.diagnostics["bootstrap"] = {"resamples": n_boot, "seed": seed}
    return fit
