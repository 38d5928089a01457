"""The planner's inverse questions: a fixed model size, a fixed token count, a target loss,
and a given (N, D) placed against the compute-optimal frontier.

On a surface (C = k N D; `analysis.surface`):
- fixed N: the D at which N is compute-optimal, D = (N/G)^(alpha/beta) / G, and C = k N D;
- fixed D: N = G (G D)^(beta/alpha);
- target loss L: on the frontier alpha A / N^alpha = beta B / D^beta (the first-order
  condition), so L - E = (A / N^alpha)(1 + alpha/beta) and
  N = (A (1 + alpha/beta) / (L - E))^(1/alpha): the cheapest C reaching L in closed form.
On an allocation law N = k_N C^a, D = k_D C^b the first two invert the power laws; a
target loss needs a surface.
"""

from __future__ import annotations

import numpy as np

from analysis import surface
from analysis.bootstrap import DEFAULT_LEVEL
from analysis.errors import AnalysisError
from analysis.plan_sources import PlanSource
from analysis.planner import PF_DAY, extrapolation, interval, law_allocation, plan


def _positive(name: str, value: float) -> float:
    if not np.isfinite(value) or value <= 0:
        raise AnalysisError(f"{name} must be a positive number; got {value}")
    return float(value)


def _answer(
    question: str,
    src: PlanSource,
    N,
    D,
    level: float,
    loss: np.ndarray | None = None,
    given: str | None = None,
) -> dict[str, object]:
    """Point answer (first row) and intervals (the rest) of arrays N, D of the same shape."""
    k = src.flops_per_param_token
    N, D = np.atleast_1d(N).astype(float), np.atleast_1d(D).astype(float)
    C = k * N * D
    out: dict[str, object] = {
        "question": question,
        "N": float(N[0]),
        "D": float(D[0]),
        "C": float(C[0]),
        "pf_days": float(C[0] / PF_DAY),
        "tokens_per_param": float(D[0] / N[0]),
    }
    if loss is not None:
        out["loss"] = float(np.atleast_1d(loss)[0])
    if N.size > 1:
        ci = {
            "N": interval(N[1:], level),
            "D": interval(D[1:], level),
            "C": interval(C[1:], level),
            "tokens_per_param": interval(D[1:] / N[1:], level),
        }
        if loss is not None:
            ci["loss"] = interval(np.atleast_1d(loss)[1:], level)
        ci.pop(given, None)  # the question's own input has no interval
        out["ci"] = {**ci, "level": level, "samples": int(N.size - 1)}
    out["extrapolation"] = extrapolation(float(C[0]), src.compute_range)
    return out


def _rows(src: PlanSource, max_samples: int) -> np.ndarray:
    rows = [src.params]
    if src.samples is not None and len(src.samples):
        rows.extend(np.asarray(src.samples, dtype=float)[:max_samples])
    return np.array(rows, dtype=float)


def for_model_size(
    N: float, src: PlanSource, level: float = DEFAULT_LEVEL, max_samples: int = 1000
) -> dict[str, object]:
    """Tokens and budget at which a model of N parameters is compute-optimal."""
    N = _positive("--model-size", N)
    if not src.has_surface:
        law = src.law
        C = (N / np.exp(law["log_kN"])) ** (1.0 / law["a"])
        return _answer("model_size", src, N, law_allocation(law, C)[1], level)
    rows = _rows(src, max_samples)
    D = surface.optimal_tokens_for(rows, N)
    return _answer(
        "model_size", src, np.full(len(rows), N), D, level, surface.loss(rows, N, D), "N"
    )


def for_tokens(
    D: float, src: PlanSource, level: float = DEFAULT_LEVEL, max_samples: int = 1000
) -> dict[str, object]:
    """Model size and budget for which D training tokens are compute-optimal."""
    D = _positive("--tokens", D)
    if not src.has_surface:
        law = src.law
        C = (D / np.exp(law["log_kD"])) ** (1.0 / law["b"])
        return _answer("tokens", src, law_allocation(law, C)[0], D, level)
    rows = _rows(src, max_samples)
    N = surface.optimal_params_for(rows, D)
    return _answer("tokens", src, N, np.full(len(rows), D), level, surface.loss(rows, N, D), "D")


def frontier_params_for_loss(p: np.ndarray, target: float) -> np.ndarray:
    """N on the compute-optimal frontier whose loss is `target` (nan where target <= E)."""
    p = np.asarray(p, dtype=float)
    E, A, _, alpha, beta = (p[..., i] for i in range(5))
    gap = target - E
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(gap > 0, (A * (1 + alpha / beta) / gap) ** (1.0 / alpha), np.nan)


def for_loss(
    target: float, src: PlanSource, level: float = DEFAULT_LEVEL, max_samples: int = 1000
) -> dict[str, object]:
    """The cheapest budget (and its N, D) that reaches loss `target`."""
    target = _positive("--target-loss", target)
    if not src.has_surface:
        raise AnalysisError(
            "--target-loss needs an L(N, D) surface (Approach 3 or --use besiroglu|hoffmann|"
            "muennighoff); an allocation law (Approach 1 or 2) predicts no loss"
        )
    E = float(src.params[0])
    if target <= E:
        raise AnalysisError(
            f"--target-loss {target:g} is at or below the fit's irreducible loss E = {E:.4g}: "
            "no budget reaches it; ask for a loss above E"
        )
    rows = _rows(src, max_samples)
    N = frontier_params_for_loss(rows, target)
    D = surface.optimal_tokens_for(rows, N)
    out = _answer("target_loss", src, N, D, level, surface.loss(rows, N, D), "loss")
    out["target_loss"] = target
    if "ci" in out:
        out["ci"]["unreachable_samples"] = int(np.sum(~np.isfinite(N[1:])))
    return out


def place(N: float, D: float, src: PlanSource, level: float = DEFAULT_LEVEL) -> dict[str, object]:
    """A given allocation against the frontier: its budget, its loss and the optimum's at
    that budget, and the compute the optimum needs to match its loss (efficiency)."""
    N, D = _positive("--model-size", N), _positive("--tokens", D)
    k = src.flops_per_param_token
    C = k * N * D
    best = plan(C, src, level=level)
    out: dict[str, object] = {
        "question": "placement",
        "N": N,
        "D": D,
        "C": C,
        "pf_days": C / PF_DAY,
        "tokens_per_param": D / N,
        "optimum_at_C": {kk: best[kk] for kk in ("N_opt", "D_opt", "tokens_per_param")},
        "size_vs_optimum": N / float(best["N_opt"]),
        "extrapolation": best["extrapolation"],
    }
    if src.has_surface:
        own = float(surface.loss(src.params, N, D))
        out["loss"] = own
        out["optimum_at_C"]["loss"] = best["loss"]
        out["excess_loss"] = own - float(best["loss"])
        n_eq = frontier_params_for_loss(src.params, own)
        c_eq = float(k * n_eq * surface.optimal_tokens_for(src.params, n_eq))
        out["compute_equivalent"] = c_eq
        out["compute_efficiency"] = c_eq / C
    return out
