"""Data-constrained scaling (Muennighoff et al. 2023): what repeated tokens and excess
parameters are worth.

With U unique tokens trained for D >= U tokens, R_D = D/U - 1 repetitions are worth
D' = U + U R_D* (1 - exp(-R_D / R_D*)) fresh tokens; parameters beyond U_N, the
compute-optimal size for U tokens, are worth N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*))
with R_N = N/U_N - 1. The loss is the ordinary surface at (N', D') (`analysis.surface`).
R_D* ~ 15.4 means repeated data loses 1/e of its value after ~15 repetitions; their
published values are data (`reference_fits.json`, key muennighoff2023).

Parameter rows: (E, A, B, alpha, beta, R_D*, R_N*), broadcast over leading axes.
"""

from __future__ import annotations

import numpy as np

from analysis import surface
from analysis.errors import AnalysisError
from analysis.reference import get_reference

DC_NAMES = (*surface.PARAM_NAMES, "R_D_star", "R_N_star")


def decayed(unique: np.ndarray, repeats: np.ndarray, r_star: np.ndarray) -> np.ndarray:
    """U + U R* (1 - exp(-R / R*)): what U unique items used 1 + R times are worth."""
    repeats = np.maximum(np.asarray(repeats, dtype=float), 0.0)
    return unique + unique * r_star * -np.expm1(-repeats / r_star)


def effective(p7: np.ndarray, N, D, U) -> tuple[np.ndarray, np.ndarray]:
    """(N', D') of Muennighoff et al. Eq. 5 for runs of N parameters, D tokens, U unique."""
    p7 = np.asarray(p7, dtype=float)
    N, D, U = (np.asarray(v, dtype=float) for v in (N, D, U))
    U_D = np.minimum(U, D)  # a run shorter than the pool sees only D unique tokens
    U_N = np.minimum(N, surface.optimal_params_for(p7[..., :5], U_D))
    d_eff = decayed(U_D, D / U_D - 1.0, p7[..., 5])
    n_eff = decayed(U_N, N / U_N - 1.0, p7[..., 6])
    return n_eff, d_eff


def loss(p7: np.ndarray, N, D, U) -> np.ndarray:
    """L(N, D, U): the surface at the effective parameters and data."""
    n_eff, d_eff = effective(p7, N, D, U)
    return surface.loss(np.asarray(p7, dtype=float)[..., :5], n_eff, d_eff)


def published() -> tuple[str, np.ndarray]:
    """Muennighoff et al.'s fitted law (label, 7 parameters)."""
    ref = get_reference("muennighoff2023")
    return ref["label"], np.array([ref[k] for k in DC_NAMES], dtype=float)


def with_decay(p5: np.ndarray, decay: np.ndarray | None = None) -> np.ndarray:
    """A surface (rows of 5) extended by (R_D*, R_N*): Muennighoff et al.'s unless given."""
    p5 = np.asarray(p5, dtype=float)
    if decay is None:
        decay = published()[1][5:]
    decay = np.broadcast_to(np.asarray(decay, dtype=float), (*p5.shape[:-1], 2))
    return np.concatenate([p5, decay], axis=-1)


def check_unique_tokens(U: float) -> float:
    if not np.isfinite(U) or U <= 0:
        raise AnalysisError(f"--unique-tokens must be a positive number of tokens; got {U}")
    return float(U)
