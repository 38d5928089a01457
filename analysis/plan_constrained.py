"""Data-constrained planning (Muennighoff et al. 2023): the best N and epochs for a budget
when only U unique tokens exist, and what the scarcity costs in loss.

The loss is `analysis.repetition.loss` with the source's surface and decay constants
(R_D*, R_N*): its own for a data-constrained fit, Muennighoff et al.'s published ones
(15.4, 5.3) otherwise, or the caller's. The optimum minimises L(N, C/(kN), U) over N:
a 400-point log grid over six decades around the unlimited-data N_opt, then a bounded
Brent step inside the best cell (the loss along a budget line is smooth and unimodal).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from analysis import repetition, surface
from analysis.bootstrap import DEFAULT_LEVEL
from analysis.errors import AnalysisError
from analysis.plan_sources import PlanSource
from analysis.planner import interval

SAMPLES_FOR_INTERVALS = 200


def decay_of(src: PlanSource, decay: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """(R_D*, R_N*) to plan with, and where they come from."""
    if decay is not None:
        return np.asarray(decay, dtype=float), "given"
    if src.decay is not None:
        return src.decay, "the source's own fit"
    label, p7 = repetition.published()
    return p7[5:], f"{label}, applied to this surface"


def constrained_optimal(p7: np.ndarray, C: float, U: float, k: float = 6.0) -> dict[str, float]:
    """argmin_N L(N, C/(kN), U) for one parameter row (E, A, B, alpha, beta, R_D*, R_N*)."""
    n_free, _ = surface.compute_optimal(p7[:5], C, k)
    grid = np.log(float(n_free)) + np.linspace(np.log(1e-4), np.log(1e2), 400)

    def f(log_n: np.ndarray) -> np.ndarray:
        n = np.exp(log_n)
        return repetition.loss(p7, n, C / (k * n), U)

    values = f(grid)
    i = int(np.nanargmin(values))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = minimize_scalar(
        lambda x: float(f(np.array(x))), bounds=(lo, hi), method="bounded", options={"xatol": 1e-9}
    )
    n = float(np.exp(res.x))
    d = C / (k * n)
    return {"N": n, "D": d, "epochs": d / U, "tokens_per_param": d / n, "loss": float(res.fun)}


def constrained_plan(
    C: float,
    U: float,
    src: PlanSource,
    decay: np.ndarray | None = None,
    level: float = DEFAULT_LEVEL,
) -> dict[str, object]:
    """The data-constrained optimum at C with U unique tokens, against unlimited data."""
    U = repetition.check_unique_tokens(U)
    if not src.has_surface:
        raise AnalysisError(
            "--unique-tokens needs an L(N, D) surface (Approach 3 or --use besiroglu|hoffmann|"
            "muennighoff); an allocation law (Approach 1 or 2) has no loss to trade off"
        )
    k = src.flops_per_param_token
    rd_rn, origin = decay_of(src, decay)
    p7 = repetition.with_decay(src.params, rd_rn)
    best = constrained_optimal(p7, C, U, k)
    n_free, d_free = surface.compute_optimal(src.params, C, k)
    free_loss = float(surface.loss(src.params, n_free, d_free))
    out: dict[str, object] = {
        "unique_tokens": U,
        "R_D_star": float(rd_rn[0]),
        "R_N_star": float(rd_rn[1]),
        "decay_from": origin,
        **best,
        "unlimited": {"N_opt": float(n_free), "D_opt": float(d_free), "loss": free_loss},
        "binding": bool(float(d_free) > U),
        "loss_cost": best["loss"] - free_loss,
        "loss_cost_relative": best["loss"] / free_loss - 1.0,
        "unlimited_allocation_on_U": {
            "epochs": float(d_free) / U,
            "loss": float(repetition.loss(p7, n_free, d_free, U)),
        },
    }
    if src.samples is not None and len(src.samples):
        s = np.asarray(src.samples, dtype=float)[:SAMPLES_FOR_INTERVALS]
        rows = [constrained_optimal(repetition.with_decay(q, rd_rn), C, U, k) for q in s]
        free = surface.loss(s, *surface.compute_optimal(s, C, k))
        # A pool can only cost loss (effective data <= D); where it does not bind, the two
        # optimisers agree to rounding, and a +-2e-16 is that rounding, not a cost or a gain.
        cost = np.array([r["loss"] for r in rows]) - free
        cost = np.where(cost > 1e-12 * free, cost, 0.0)
        ci = {key: interval(np.array([r[key] for r in rows]), level) for key in best}
        out["ci"] = {**ci, "loss_cost": interval(cost, level), "level": level, "samples": len(s)}
    return out


def constrained_placement(
    N: float, D: float, U: float, src: PlanSource, decay: np.ndarray | None = None
) -> dict[str, object]:
    """A given (N, D) on U unique tokens: its loss under repetition and the data-constrained
    optimum at its budget."""
    U = repetition.check_unique_tokens(U)
    best = constrained_plan(src.flops_per_param_token * N * D, U, src, decay)
    p7 = repetition.with_decay(src.params, np.array([best["R_D_star"], best["R_N_star"]]))
    own = float(repetition.loss(p7, N, D, U))
    return {
        "loss": own,
        "epochs": D / U,
        "optimum": {key: best[key] for key in ("N", "D", "epochs", "tokens_per_param", "loss")},
        "excess_loss": own - float(best["loss"]),
        "R_D_star": best["R_D_star"],
        "R_N_star": best["R_N_star"],
        "decay_from": best["decay_from"],
        "unique_tokens": U,
    }
