"""Approach 3: the parametric surface L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022).

Objective: Huber (delta 1e-3) on log residuals, LogSumExp form, summed over points, as in
Hoffmann et al. and Besiroglu et al. Optimiser (see `huber_newton`): damped Newton with the
exact Hessian, solved for many problems at once.

Point fit: starts come from variable projection on a grid of (alpha, beta): for fixed
exponents the model is linear in (E, A, B), so a weighted least-squares fit (weights 1/L,
a first-order stand-in for log residuals) gives E, A, B; the best grid cells start Newton.
`starts="hoffmann"` uses Hoffmann's 4,500-point grid instead (slower, same answer here).
Bootstrap: every resample is a weight vector; all are solved together, warm-started from
the point fit, which is what makes 4,000 resamples take seconds rather than minutes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from analysis.bootstrap import DEFAULT_LEVEL, ci_dict, percentile_ci, resample_weights
from analysis.errors import FitError
from analysis.huber_newton import HUBER_DELTA, newton_fit, objective
from analysis.surface import (
    FLOPS_PER_PARAM_TOKEN_6ND,
    PARAM_NAMES,
    allocation_exponents,
    compute_optimal,
    loss,
    param_array,
)

__all__ = ["PARAM_NAMES", "Approach3Fit", "compute_optimal", "fit_approach3", "param_array"]


@dataclass
class Approach3Fit:
    """Point estimate, bootstrap samples and diagnostics of the L(N, D) surface."""

    params: dict[str, float]
    objective: float
    n_points: int
    ci: dict[str, list[float]] = field(default_factory=dict)
    samples: np.ndarray | None = None  # (R x 5): E, A, B, alpha, beta per resample
    diagnostics: dict[str, object] = field(default_factory=dict)
    level: float = DEFAULT_LEVEL
    flops_per_param_token: float = FLOPS_PER_PARAM_TOKEN_6ND  # k of C = k N D (see surface)

    @property
    def a(self) -> float:
        return float(allocation_exponents(self.params["alpha"], self.params["beta"])[0])

    @property
    def b(self) -> float:
        return float(allocation_exponents(self.params["alpha"], self.params["beta"])[1])

    def optimal(self, C: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Compute-optimal N and D at budget(s) C under the point estimate."""
        return compute_optimal(param_array(self.params), C, self.flops_per_param_token)

    def tokens_per_param(self, C: float) -> dict[str, float | list[float]]:
        """D_opt / N_opt at C with its bootstrap interval (when there are samples)."""
        n, d = self.optimal(C)
        out: dict[str, float | list[float]] = {"C": float(C), "value": float(d / n)}
        if self.samples is not None and len(self.samples):
            ns, ds = compute_optimal(self.samples, float(C), self.flops_per_param_token)
            out["ci"] = list(percentile_ci(ds / ns, self.level))
        return out

    def predict(self, N: np.ndarray, D: np.ndarray) -> np.ndarray:
        return loss(param_array(self.params), N, D)


def _theta_to_params(theta: np.ndarray) -> np.ndarray:
    """(e, a, b, alpha, beta) log-space rows to (E, A, B, alpha, beta) rows."""
    out = np.array(theta, dtype=float, copy=True)
    out[..., :3] = np.exp(out[..., :3])
    return out


def variable_projection_starts(
    logN: np.ndarray, logD: np.ndarray, logL: np.ndarray, k: int = 12, n_grid: int = 40
) -> np.ndarray:
    """The k best (e, a, b, alpha, beta) starts from linear fits on an (alpha, beta) grid."""
    exps = np.linspace(0.05, 2.0, n_grid)
    L = np.exp(logL)
    x_Gxn = np.exp(-exps[:, None] * logN[None, :])
    y_Gxn = np.exp(-exps[:, None] * logD[None, :])
    xs, ys = x_Gxn.max(axis=1, keepdims=True), y_Gxn.max(axis=1, keepdims=True)
    xn, yn = x_Gxn / xs, y_Gxn / ys
    ia, ib = np.meshgrid(np.arange(n_grid), np.arange(n_grid), indexing="ij")
    ia, ib = ia.ravel(), ib.ravel()
    X_Pxnx3 = np.stack([np.ones((ia.size, logL.size)), xn[ia], yn[ib]], axis=2) / L[None, :, None]
    y_n = np.ones_like(L)  # L / L
    XtX = np.einsum("pni,pnj->pij", X_Pxnx3, X_Pxnx3) + 1e-12 * np.eye(3)
    Xty = np.einsum("pni,n->pi", X_Pxnx3, y_n)
    coef = np.linalg.solve(XtX, Xty[:, :, None])[:, :, 0]
    floor = 1e-6 * L.min()
    E = np.maximum(coef[:, 0], floor)
    A = np.maximum(coef[:, 1], floor) / xs[ia, 0]
    B = np.maximum(coef[:, 2], floor) / ys[ib, 0]
    theta = np.stack([np.log(E), np.log(A), np.log(B), exps[ia], exps[ib]], axis=1)
    f = objective(theta, logN, logD, logL, np.ones((theta.shape[0], logL.size)))
    return theta[np.argsort(f)[:k]]


def hoffmann_grid() -> np.ndarray:
    """Hoffmann et al.'s 4,500 starts: e in {-1..1}, a, b in {0..25}, alpha, beta in {0..2}."""
    grid = itertools.product(
        np.arange(-1.0, 1.01, 0.5),
        np.arange(0.0, 26.0, 5.0),
        np.arange(0.0, 26.0, 5.0),
        np.arange(0.0, 2.01, 0.5),
        np.arange(0.0, 2.01, 0.5),
    )
    return np.array(list(grid), dtype=float)


def fit_approach3(
    N: np.ndarray,
    D: np.ndarray,
    loss: np.ndarray,
    n_boot: int = 4000,
    seed: int = 0,
    delta: float = HUBER_DELTA,
    starts: str = "auto",
    level: float = DEFAULT_LEVEL,
    flops_per_param_token: float = FLOPS_PER_PARAM_TOKEN_6ND,
) -> Approach3Fit:
    """Fit L(N, D) and bootstrap it (resampling points with replacement, seeded).

    `flops_per_param_token` is k of C = k N D in the fit's FLOP convention (6 for 6ND; see
    `surface.effective_flops_per_param_token` for the detailed count): it turns budgets into
    allocations and sets the compute range recorded for the planner's extrapolation check.
    """
    N, D, loss = (np.asarray(v, dtype=float) for v in (N, D, loss))
    if N.size < 6:
        raise FitError(f"Approach 3 has 5 parameters and needs at least 6 runs; got {N.size}")
    if np.unique(N).size < 2 or np.unique(D).size < 2:
        raise FitError("Approach 3 needs runs at 2+ model sizes and 2+ token counts")
    logN, logD, logL = np.log(N), np.log(D), np.log(loss)
    if starts == "hoffmann":
        theta0 = hoffmann_grid()
    elif starts == "auto":
        theta0 = variable_projection_starts(logN, logD, logL)
    else:
        raise FitError(f"unknown starts {starts!r}; use 'auto' or 'hoffmann'")
    ones = np.ones((theta0.shape[0], N.size))
    res = newton_fit(theta0, logN, logD, logL, ones, delta)
    best = int(np.nanargmin(np.where(np.isfinite(res.objective_R), res.objective_R, np.inf)))
    theta = res.theta_Rx5[best]
    n_same = int(
        np.sum(
            np.abs(res.objective_R - res.objective_R[best]) <= 1e-9 * res.objective_R[best] + 1e-18
        )
    )
    p = _theta_to_params(theta)
    fit = Approach3Fit(
        params=dict(zip(PARAM_NAMES, map(float, p), strict=True)),
        objective=float(res.objective_R[best]),
        n_points=int(N.size),
        level=level,
        flops_per_param_token=float(flops_per_param_token),
    )
    r = np.log(fit.predict(N, D)) - logL
    fit.diagnostics = {
        "starts": int(theta0.shape[0]),
        "starts_reaching_best": n_same,
        "converged": bool(res.converged_R[best]),
        "points_in_quadratic_zone": int(np.sum(np.abs(r) <= delta)),
        "rms_log_residual": float(np.sqrt(np.mean(r**2))),
        "huber_delta": delta,
        "flops_per_param_token": float(flops_per_param_token),
        "compute_range": [
            float(v) for v in flops_per_param_token * np.array([(N * D).min(), (N * D).max()])
        ],
        "warnings": _warnings(fit),
    }
    if n_boot > 0:
        w = resample_weights(N.size, n_boot, seed)
        boot = newton_fit(np.tile(theta, (n_boot, 1)), logN, logD, logL, w, delta)
        fit.samples = _theta_to_params(boot.theta_Rx5)
        fit.diagnostics["bootstrap"] = {
            "resamples": n_boot,
            "seed": seed,
            "converged": int(boot.converged_R.sum()),
            "iterations": boot.iterations,
        }
        names = dict(zip(PARAM_NAMES, fit.samples.T, strict=True))
        names["a"], names["b"] = allocation_exponents(names["alpha"], names["beta"])
        fit.ci = ci_dict(names, level)
    return fit


def _warnings(fit: Approach3Fit) -> list[str]:
    p, out = fit.params, []
    if not (0.01 < p["alpha"] < 3 and 0.01 < p["beta"] < 3):
        out.append(
            f"exponents alpha={p['alpha']:.3g}, beta={p['beta']:.3g} are implausible: "
            "the sizes or token counts sampled do not constrain the surface"
        )
    if fit.n_points < 15:
        out.append(f"only {fit.n_points} runs for 5 parameters: expect wide intervals")
    return out
