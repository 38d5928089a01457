"""The one L(N, D) surface: L = E + A/N^alpha + B/D^beta, and what follows from it.

Approach 3 fits it, the planner plans with it, the synthetic data are drawn from it, and
the data-constrained law (`analysis.repetition`) feeds it effective N and D. Every one of
them calls these functions, so the formula and the allocation exponents
a = beta/(alpha+beta), b = alpha/(alpha+beta) are written once.

Parameter rows are arrays whose last axis is (E, A, B, alpha, beta); every function
broadcasts over leading axes (bootstrap samples, budgets).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from analysis.errors import AnalysisError

PARAM_NAMES = ("E", "A", "B", "alpha", "beta")
FLOPS_PER_PARAM_TOKEN_6ND = 6.0  # C = 6 N D: 2 N D forward, 4 N D backward (Kaplan et al.)


def param_array(params: Mapping[str, float]) -> np.ndarray:
    """(E, A, B, alpha, beta) of a dict as a length-5 array."""
    return np.array([params[k] for k in PARAM_NAMES], dtype=float)


def _unpack(p: np.ndarray) -> tuple[np.ndarray, ...]:
    p = np.asarray(p, dtype=float)
    return tuple(p[..., k] for k in range(5))


def loss(p: np.ndarray, N: np.ndarray | float, D: np.ndarray | float) -> np.ndarray:
    """L(N, D) for parameter rows p."""
    E, A, B, alpha, beta = _unpack(p)
    return E + A / np.asarray(N, dtype=float) ** alpha + B / np.asarray(D, dtype=float) ** beta


def allocation_exponents(
    alpha: np.ndarray | float, beta: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of N_opt ~ C^a, D_opt ~ C^b: a = beta/(alpha+beta), b = alpha/(alpha+beta)."""
    alpha, beta = np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float)
    return beta / (alpha + beta), alpha / (alpha + beta)


def balance(p: np.ndarray) -> np.ndarray:
    """G = (alpha A / (beta B))^(1/(alpha+beta)): N_opt = G (C/k)^a, D_opt = (C/k)^b / G."""
    _, A, B, alpha, beta = _unpack(p)
    return (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))


def compute_optimal(
    p: np.ndarray, C: np.ndarray | float, flops_per_param_token: float = 6.0
) -> tuple[np.ndarray, np.ndarray]:
    """N_opt, D_opt minimising L(N, D) subject to C = k N D (k = `flops_per_param_token`).

    k is 6 for the 6ND convention. For a fit whose C is the detailed count, pass the
    effective k of its runs (`effective_flops_per_param_token`): the detailed count is not
    proportional to N D (attention adds a term in ctx and d_model), so a single k is exact
    only where attention's share of the FLOPs is the same as in the fitted runs.
    """
    _, _, _, alpha, beta = _unpack(p)
    a, b = allocation_exponents(alpha, beta)
    G = balance(p)
    x = np.asarray(C, dtype=float) / float(flops_per_param_token)
    return G * x**a, x**b / G


def optimal_tokens_for(p: np.ndarray, N: np.ndarray | float) -> np.ndarray:
    """The D for which N is compute-optimal: D = (N/G)^(b/a) / G = (N/G)^(alpha/beta) / G."""
    _, _, _, alpha, beta = _unpack(p)
    G = balance(p)
    return (np.asarray(N, dtype=float) / G) ** (alpha / beta) / G


def optimal_params_for(p: np.ndarray, D: np.ndarray | float) -> np.ndarray:
    """The N for which D is compute-optimal: N = G (G D)^(beta/alpha) (Muennighoff's D_to_N)."""
    _, _, _, alpha, beta = _unpack(p)
    G = balance(p)
    return G * (G * np.asarray(D, dtype=float)) ** (beta / alpha)


def effective_flops_per_param_token(
    N: np.ndarray, D: np.ndarray, C: np.ndarray | None, flops: str = "6ND"
) -> float:
    """FLOPs per parameter-token of the convention a fit's C uses: 6 for 6ND (C = 6 N D with
    the fit's own N); for any other C (the detailed count, or 6 N_total D with non-embedding
    N), the median of C / (N D) over the fitted runs (see `compute_optimal`)."""
    if flops == "6ND" or C is None:
        return FLOPS_PER_PARAM_TOKEN_6ND
    k = np.asarray(C, dtype=float) / (np.asarray(N, dtype=float) * np.asarray(D, dtype=float))
    k = k[np.isfinite(k) & (k > 0)]
    if not k.size:
        raise AnalysisError("cannot derive FLOPs per parameter-token: no run has C, N and D > 0")
    return float(np.median(k))
