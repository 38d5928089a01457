"""Synthetic ground truth: losses from a known L(N, D) at an IsoFLOP grid, for tests and docs.

Fits must recover what generated the data; this is where their tolerances are stated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.approach3 import compute_optimal

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
    p = np.array([params[k] for k in ("E", "A", "B", "alpha", "beta")])
    rows = []
    for C in budgets:
        n_opt, _ = compute_optimal(p, np.array(C))
        for lg in np.linspace(-span_decades / 2, span_decades / 2, sizes_per_budget):
            N = float(n_opt) * 10**lg
            D = C / (6 * N)
            clean = (
                params["E"] + params["A"] / N ** params["alpha"] + params["B"] / D ** params["beta"]
            )
            for s in range(seeds_per_point):
                loss = clean * float(np.exp(noise * rng.standard_normal())) if noise else clean
                rows.append(
                    {
                        "run_id": f"c{C:.0e}-n{N:.3e}-s{s}",
                        "budget": C,
                        "N": N,
                        "D": D,
                        "C": C,
                        "loss": loss,
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
    rows = []
    for r in points.itertuples():
        for f in fractions:
            D = r.D * f
            loss = (
                params["E"]
                + params["A"] / r.N ** params["alpha"]
                + params["B"] / D ** params["beta"]
            )
            rows.append(
                {
                    "run_id": r.run_id,
                    "N": r.N,
                    "D": D,
                    "C": 6 * r.N * D,
                    "loss": loss,
                    "fraction": f,
                }
            )
    return pd.DataFrame(rows)
