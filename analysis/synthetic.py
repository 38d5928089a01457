"""Synthetic ground truth: losses from a known L(N, D) at an IsoFLOP grid, for tests and docs.

Fits must recover what generated the data; this is where their tolerances are stated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import repetition
from analysis.surface import compute_optimal, loss, param_array

CHINCHILLA_PUBLISHED = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def isoflop_grid(
    params: dict[str, float] = CHINCHILLA_PUBLISHED,
    budgets: tuple[float, ...] = (1e18, 1e19, 1e20, 1e21, 1e22),
    sizes_per_budget: int = 9,
    span_decades: float = 1.2,
    noise: float = 0.0,
    seed: int = 0,
    seeds_per_point: int = 1,
) -> pd.DataFrame:
    """A results table (run_id, budget, N, D, C, loss, seed) centred on each true optimum.

    Sizes span `span_decades` around the true N_opt of each budget; noise is multiplicative
    (log-normal with sd `noise`), one draw per run and seed.
    """
    rng = np.random.default_rng(seed)
    p = param_array(params)
    rows = []
    for C in budgets:
        n_opt, _ = compute_optimal(p, np.array(C))
        for lg in np.linspace(-span_decades / 2, span_decades / 2, sizes_per_budget):
            N = float(n_opt) * 10**lg
            D = C / (6 * N)
            clean = float(loss(p, N, D))
            for s in range(seeds_per_point):
                value = clean * float(np.exp(noise * rng.standard_normal())) if noise else clean
                rows.append(
                    {
                        "run_id": f"c{C:.0e}-n{N:.3e}-s{s}",
                        "budget": C,
                        "N": N,
                        "D": D,
                        "C": C,
                        "loss": value,
                        "seed": s,
                    }
                )
    return pd.DataFrame(rows)


def training_curves(
    params: dict[str, float],
    points: pd.DataFrame,
    fractions: tuple[float, ...] = (0.1, 0.2, 0.4, 0.6, 0.8, 1.0),
) -> pd.DataFrame:
    """Intermediate evaluations of each run (D = fraction of its tokens) from the same law."""
    p = param_array(params)
    rows = []
    for r in points.itertuples():
        for f in fractions:
            D = r.D * f
            rows.append(
                {
                    "run_id": r.run_id,
                    "N": r.N,
                    "D": D,
                    "C": 6 * r.N * D,
                    "loss": float(loss(p, r.N, D)),
                    "fraction": f,
                }
            )
    return pd.DataFrame(rows)


def repetition_runs(
    p7: np.ndarray,
    sizes: tuple[float, ...],
    epochs: tuple[float, ...],
    unique_tokens: tuple[float, ...],
    noise: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Runs (N, D, U, epochs, loss) of the data-constrained law at every size x epochs x pool;
    noise is multiplicative (log-normal with sd `noise`)."""
    rng = np.random.default_rng(seed)
    rows = []
    for U in unique_tokens:
        for N in sizes:
            for ep in epochs:
                clean = float(repetition.loss(p7, N, ep * U, U))
                noisy = clean * float(np.exp(noise * rng.standard_normal())) if noise else clean
                rows.append({"N": N, "D": ep * U, "U": U, "epochs": ep, "loss": noisy})
    return pd.DataFrame(rows)
