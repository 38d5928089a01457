"""The planning question: for a budget C, how big a model and how many tokens?

From an L(N, D) fit (the lab's own, with bootstrap samples for intervals, or a published
one): N_opt, D_opt, tokens/param and predicted loss. With an expected number of inference
tokens T, the allocation of Sardana et al. 2024 ("Beyond Chinchilla-Optimal"): minimise
training plus inference FLOPs, 6ND + 2NT, subject to reaching the loss the
Chinchilla-optimal model reaches at C.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from analysis.approach3 import compute_optimal
from analysis.bootstrap import DEFAULT_LEVEL, percentile_ci
from analysis.errors import AnalysisError

PF_DAY = 8.64e19  # 1e15 FLOP/s for 86,400 s


def budget_from(
    budget: float | None = None,
    pf_days: float | None = None,
    accelerator_hours: float | None = None,
    peak: float | None = None,
    mfu: float | None = None,
) -> float:
    """FLOPs from exactly one of: a budget, PF-days, or accelerator-hours x peak x MFU."""
    given = [x is not None for x in (budget, pf_days, accelerator_hours)]
    if sum(given) != 1:
        raise AnalysisError("give exactly one of --budget, --pf-days, --accelerator-hours")
    if budget is not None:
        C = float(budget)
    elif pf_days is not None:
        C = float(pf_days) * PF_DAY
    else:
        if peak is None or mfu is None:
            raise AnalysisError(
                "--accelerator-hours needs --peak (FLOP/s per accelerator) and --mfu"
            )
        if not 0 < mfu <= 1:
            raise AnalysisError(f"--mfu must be in (0, 1]; got {mfu}")
        C = float(accelerator_hours) * 3600.0 * float(peak) * float(mfu)
    if not np.isfinite(C) or C <= 0:
        raise AnalysisError(f"the budget must be a positive number of FLOPs; got {C}")
    return C


def loss_at(p: np.ndarray, N: np.ndarray, D: np.ndarray) -> np.ndarray:
    """L(N, D) for parameter rows p = (E, A, B, alpha, beta)."""
    p = np.asarray(p, dtype=float)
    return p[..., 0] + p[..., 1] / N ** p[..., 3] + p[..., 2] / D ** p[..., 4]


def inference_optimal(p: np.ndarray, C: float, T: float) -> dict[str, float]:
    """Sardana et al. 2024: argmin_N 6 N D(N) + 2 N T with L(N, D(N)) = L(N_opt(C), D_opt(C))."""
    E, A, B, alpha, beta = (float(v) for v in p)
    n_c, d_c = compute_optimal(p, np.array(C))
    target = float(loss_at(p, n_c, d_c))
    n_floor = (A / (target - E)) ** (1.0 / alpha)  # below this size the target loss is unreachable

    def tokens(log_n: float) -> float:
        gap = target - E - A / np.exp(log_n) ** alpha
        return (B / gap) ** (1.0 / beta) if gap > 0 else np.inf

    def total(log_n: float) -> float:
        n = np.exp(log_n)
        return np.log(6 * n * tokens(log_n) + 2 * n * T)

    lo, hi = np.log(n_floor) + 1e-9, np.log(float(n_c)) + 1e-9
    res = minimize_scalar(total, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
    n = float(np.exp(res.x))
    d = float(tokens(res.x))
    return {
        "N": n,
        "D": d,
        "tokens_per_param": d / n,
        "loss": target,
        "train_flops": 6 * n * d,
        "inference_flops": 2 * n * T,
        "total_flops": 6 * n * d + 2 * n * T,
        "chinchilla_total_flops": float(6 * n_c * d_c + 2 * n_c * T),
    }


def _interval(values: np.ndarray, level: float) -> list[float]:
    return list(percentile_ci(values, level))


def plan(
    C: float,
    params: np.ndarray,
    samples: np.ndarray | None = None,
    inference_tokens: float | None = None,
    level: float = DEFAULT_LEVEL,
    max_samples: int = 1000,
) -> dict[str, object]:
    """Compute-optimal N, D, tokens/param and loss at C, with intervals from `samples`."""
    p = np.asarray(params, dtype=float)
    n, d = compute_optimal(p, np.array(C))
    out: dict[str, object] = {
        "C": C,
        "pf_days": C / PF_DAY,
        "N_opt": float(n),
        "D_opt": float(d),
        "tokens_per_param": float(d / n),
        "loss": float(loss_at(p, n, d)),
    }
    s = None
    if samples is not None and len(samples):
        s = np.asarray(samples, dtype=float)[:max_samples]
        ns, ds = compute_optimal(s, np.full(len(s), C))
        out["ci"] = {
            "N_opt": _interval(ns, level),
            "D_opt": _interval(ds, level),
            "tokens_per_param": _interval(ds / ns, level),
            "loss": _interval(loss_at(s, ns, ds), level),
            "level": level,
            "samples": len(s),
        }
    if inference_tokens is not None:
        if inference_tokens < 0:
            raise AnalysisError("--inference-tokens must be >= 0")
        inf = inference_optimal(p, C, float(inference_tokens))
        inf["inference_tokens"] = float(inference_tokens)
        inf["saving"] = 1.0 - inf["total_flops"] / inf["chinchilla_total_flops"]
        if s is not None:
            rows = [inference_optimal(q, C, float(inference_tokens)) for q in s[:200]]
            inf["ci"] = {
                k: _interval(np.array([r[k] for r in rows]), level)
                for k in ("N", "D", "tokens_per_param", "total_flops")
            }
        out["inference"] = inf
    return out
