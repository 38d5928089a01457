"""The planning question: for a budget C, how big a model and how many tokens?

From a `PlanSource` (`plan_sources`: the lab's Approach 3 or 2 fit, with bootstrap samples
for intervals, or a published one): N_opt, D_opt, tokens/param and predicted loss, and how
many decades of compute beyond the fit's data the budget lies. With an expected number of
inference tokens T, the allocation of Sardana et al. 2024 ("Beyond Chinchilla-Optimal"):
minimise training plus inference FLOPs, k N D + 2 N T, subject to reaching the loss the
Chinchilla-optimal model reaches at C. The other questions live beside it: `plan_inverse`
(fixed N, fixed D, target loss, a given model placed), `plan_constrained` (scarce unique
tokens, Muennighoff et al. 2023); `plan_answer` picks one from the CLI's arguments.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from analysis import surface
from analysis.bootstrap import DEFAULT_LEVEL, percentile_ci
from analysis.errors import AnalysisError
from analysis.plan_sources import PlanSource

PF_DAY = 8.64e19  # 1e15 FLOP/s for 86,400 s
SCHEMA_VERSION = 1  # of the planner's JSON: bump when a key changes meaning or goes away
EXTRAPOLATION_WARN_DECADES = 2.0


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


loss_at = surface.loss  # kept for callers of the old name (holdout)


def as_source(source: PlanSource | np.ndarray, samples: np.ndarray | None = None) -> PlanSource:
    """A PlanSource, or bare surface parameters (and samples) wrapped as one."""
    if isinstance(source, PlanSource):
        return source
    return PlanSource(
        label="given parameters", params=np.asarray(source, dtype=float), samples=samples
    )


def extrapolation(C: float, compute_range: tuple[float, float] | None) -> dict[str, object]:
    """How many decades of compute C lies outside the fit's data, with a warning past 2."""
    if compute_range is None:
        return {
            "decades_beyond_data": None,
            "fit_compute_range": None,
            "warning": "the fit records no compute range: the extrapolation distance is unknown",
        }
    lo, hi = compute_range
    decades = max(0.0, float(np.log10(C / hi)), float(np.log10(lo / C)))
    out: dict[str, object] = {
        "decades_beyond_data": decades,
        "fit_compute_range": [float(lo), float(hi)],
        "warning": None,
    }
    if decades > EXTRAPOLATION_WARN_DECADES:
        side = "above" if C > hi else "below"
        out["warning"] = (
            f"{decades:.1f} decades of compute {side} the fit's data ({lo:.2g}-{hi:.2g} FLOPs): "
            "an extrapolation this far is a guess, not a measurement"
        )
    return out


def law_allocation(law: dict, C) -> tuple[np.ndarray, np.ndarray]:
    """N_opt = k_N C^a, D_opt = k_D C^b of an allocation law (arrays broadcast)."""
    C = np.asarray(C, dtype=float)
    return (
        np.exp(np.asarray(law["log_kN"])) * C ** np.asarray(law["a"]),
        np.exp(np.asarray(law["log_kD"])) * C ** np.asarray(law["b"]),
    )


def inference_optimal(p: np.ndarray, C: float, T: float, k: float = 6.0) -> dict[str, float]:
    """Sardana et al. 2024: argmin_N k N D(N) + 2 N T with L(N, D(N)) = L(N_opt(C), D_opt(C))."""
    E, A, B, alpha, beta = (float(v) for v in p)
    n_c, d_c = surface.compute_optimal(p, C, k)
    target = float(surface.loss(p, n_c, d_c))
    n_floor = (A / (target - E)) ** (1.0 / alpha)  # below this size the target loss is unreachable

    def tokens(log_n: float) -> float:
        gap = target - E - A / np.exp(log_n) ** alpha
        return (B / gap) ** (1.0 / beta) if gap > 0 else np.inf

    def total(log_n: float) -> float:
        n = np.exp(log_n)
        return np.log(k * n * tokens(log_n) + 2 * n * T)

    lo, hi = np.log(n_floor) + 1e-9, np.log(float(n_c)) + 1e-9
    res = minimize_scalar(total, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
    n = float(np.exp(res.x))
    d = float(tokens(res.x))
    return {
        "N": n,
        "D": d,
        "tokens_per_param": d / n,
        "loss": target,
        "train_flops": k * n * d,
        "inference_flops": 2 * n * T,
        "total_flops": k * n * d + 2 * n * T,
        "chinchilla_total_flops": float(k * n_c * d_c + 2 * n_c * T),
    }


def interval(values: np.ndarray, level: float) -> list[float]:
    return list(percentile_ci(values, level))


def plan(
    C: float,
    source: PlanSource | np.ndarray,
    samples: np.ndarray | None = None,
    inference_tokens: float | None = None,
    level: float = DEFAULT_LEVEL,
    max_samples: int = 1000,
) -> dict[str, object]:
    """Compute-optimal N, D, tokens/param (and loss, for a surface) at C, with intervals
    from the source's samples and the distance from the fit's data."""
    src = as_source(source, samples)
    k = src.flops_per_param_token
    out: dict[str, object] = {"question": "budget", "C": C, "pf_days": C / PF_DAY}
    s = None
    if src.has_surface:
        p = src.params
        n, d = surface.compute_optimal(p, C, k)
        out.update(N_opt=float(n), D_opt=float(d), tokens_per_param=float(d / n))
        out["loss"] = float(surface.loss(p, n, d))
        if src.samples is not None and len(src.samples):
            s = np.asarray(src.samples, dtype=float)[:max_samples]
            ns, ds = surface.compute_optimal(s, C, k)
            out["ci"] = {
                "N_opt": interval(ns, level),
                "D_opt": interval(ds, level),
                "tokens_per_param": interval(ds / ns, level),
                "loss": interval(surface.loss(s, ns, ds), level),
                "level": level,
                "samples": len(s),
            }
    else:
        n, d = law_allocation(src.law, C)
        out.update(N_opt=float(n), D_opt=float(d), tokens_per_param=float(d / n))
        out["flops_6ND_of_allocation"] = float(6 * n * d)
    out["extrapolation"] = extrapolation(C, src.compute_range)
    if inference_tokens is not None:
        if inference_tokens < 0:
            raise AnalysisError("--inference-tokens must be >= 0")
        if not src.has_surface:
            raise AnalysisError(
                "--inference-tokens needs an L(N, D) surface (Approach 3 or a published one); "
                "an allocation law has no loss to hold fixed"
            )
        inf = inference_optimal(src.params, C, float(inference_tokens), k)
        inf["inference_tokens"] = float(inference_tokens)
        inf["saving"] = 1.0 - inf["total_flops"] / inf["chinchilla_total_flops"]
        if s is not None:
            rows = [inference_optimal(q, C, float(inference_tokens), k) for q in s[:200]]
            inf["ci"] = {
                key: interval(np.array([r[key] for r in rows]), level)
                for key in ("N", "D", "tokens_per_param", "total_flops")
            }
        out["inference"] = inf
    return out
