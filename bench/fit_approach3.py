"""Benchmark: Approach 3 on the Chinchilla data, point fit + 4,000-resample bootstrap.

Compares `analysis.approach3.fit_approach3` (batched damped Newton, variable-projection
starts) with the plain scipy procedure, measured in the same process: L-BFGS-B (analytic
gradient, tight tolerances) from each of Hoffmann's 4,500 grid starts for the point fit,
then one L-BFGS-B per resample warm-started at the point fit, on the same resamples.
The reference objective is written here independently (scipy.special.logsumexp, huber).

    .venv/bin/python bench/fit_approach3.py            # full reference (minutes)
    .venv/bin/python bench/fit_approach3.py --quick    # reference on a subset, times scaled

Writes bench/results/fit_approach3.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber, logsumexp

from analysis.approach3 import PARAM_NAMES, fit_approach3, hoffmann_grid
from analysis.examples import load_example

DELTA = 1e-3
TIGHT = {"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10000, "maxfun": 100000}
OUT = Path(__file__).parent / "results" / "fit_approach3.json"


def reference_objective(theta: np.ndarray, lN: np.ndarray, lD: np.ndarray, lL: np.ndarray) -> tuple:
    """Hoffmann's objective and its gradient for one parameter vector (e, a, b, alpha, beta)."""
    e, a, b, alpha, beta = theta
    terms = np.stack([np.full_like(lN, e), a - alpha * lN, b - beta * lD])
    lse = logsumexp(terms, axis=0)
    r = lse - lL
    p = np.exp(terms - lse)
    dh = np.clip(r, -DELTA, DELTA)
    grad = np.array([dh @ p[0], dh @ p[1], dh @ p[2], -(dh * lN) @ p[1], -(dh * lD) @ p[2]])
    return float(huber(DELTA, r).sum()), grad


def lbfgsb(theta0: np.ndarray, lN, lD, lL, options: dict) -> tuple[np.ndarray, float]:
    res = minimize(
        reference_objective, theta0, args=(lN, lD, lL), jac=True, method="L-BFGS-B", options=options
    )
    return res.x, float(res.fun)


def to_params(theta: np.ndarray) -> np.ndarray:
    out = np.array(theta, dtype=float, copy=True)
    out[..., :3] = np.exp(out[..., :3])
    return out


def reference(lN, lD, lL, n_boot: int, seed: int, grid_stride: int, boot_count: int) -> dict:
    """Grid point fit, then per-resample L-BFGS-B; times scaled up when run on a subset."""
    grid = hoffmann_grid()
    starts = grid[::grid_stride]
    t0 = time.perf_counter()
    fits = [lbfgsb(s, lN, lD, lL, TIGHT) for s in starts]
    t_grid = (time.perf_counter() - t0) * len(grid) / len(starts)
    best = min(fits, key=lambda f: f[1])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, lL.size, size=(n_boot, lL.size))[:boot_count]
    t0 = time.perf_counter()
    boot = np.array([lbfgsb(best[0], lN[i], lD[i], lL[i], TIGHT)[0] for i in idx])
    t_boot = (time.perf_counter() - t0) * n_boot / boot_count
    t0 = time.perf_counter()
    loose = np.array([lbfgsb(best[0], lN[i], lD[i], lL[i], {})[0] for i in idx[:200]])
    return {
        "point": to_params(best[0]),
        "objective": best[1],
        "samples": to_params(boot),
        "default_tol_alpha_ci": np.percentile(loose[:, 3], [2.5, 97.5]).tolist(),
        "time_grid_s": t_grid,
        "time_boot_s": t_boot,
        "starts_run": len(starts),
        "resamples_run": boot_count,
        "time_default_tol_200": time.perf_counter() - t0,
    }


def ci(samples: np.ndarray) -> np.ndarray:
    """(5 x 2) 95% percentile intervals."""
    return np.percentile(samples, [2.5, 97.5], axis=0).T


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="reference on 1/10 of the grid and 400 resamples, times scaled",
    )
    ap.add_argument("--resamples", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    pts = load_example("chinchilla").points
    N, D, L = (pts[c].to_numpy() for c in ("N", "D", "loss"))
    t0 = time.perf_counter()
    fit_approach3(N, D, L, n_boot=0)
    t_point = time.perf_counter() - t0
    t0 = time.perf_counter()
    lab = fit_approach3(N, D, L, n_boot=args.resamples, seed=args.seed)
    t_total = time.perf_counter() - t0
    stride, count = (10, min(400, args.resamples)) if args.quick else (1, args.resamples)
    ref = reference(np.log(N), np.log(D), np.log(L), args.resamples, args.seed, stride, count)
    lab_point = np.array([lab.params[k] for k in PARAM_NAMES])
    # Same resamples on both sides: --quick compares the lab's first `count` resamples.
    lab_ci, ref_ci = ci(lab.samples[: ref["resamples_run"]]), ci(ref["samples"])
    point_rel = np.abs(lab_point / ref["point"] - 1)
    width_rel = np.abs((lab_ci[:, 1] - lab_ci[:, 0]) / (ref_ci[:, 1] - ref_ci[:, 0]) - 1)
    end_rel = np.abs(lab_ci - ref_ci).max(axis=1) / (ref_ci[:, 1] - ref_ci[:, 0])
    ref_total = ref["time_grid_s"] + ref["time_boot_s"]
    result = {
        "data": "chinchilla_epoch2024 (240 points)",
        "resamples": args.resamples,
        "quick": args.quick,
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "lab": {
            "time_point_s": t_point,
            "time_point_plus_bootstrap_s": t_total,
            "params": lab.params,
            "objective": lab.objective,
            "ci": dict(zip(PARAM_NAMES, lab_ci.tolist(), strict=True)),
        },
        "reference": {
            "time_grid_s": ref["time_grid_s"],
            "time_bootstrap_s": ref["time_boot_s"],
            "time_total_s": ref_total,
            "starts_run": ref["starts_run"],
            "resamples_run": ref["resamples_run"],
            "params": dict(zip(PARAM_NAMES, ref["point"].tolist(), strict=True)),
            "objective": ref["objective"],
            "ci": dict(zip(PARAM_NAMES, ref_ci.tolist(), strict=True)),
            "default_tolerance_alpha_ci": ref["default_tol_alpha_ci"],
        },
        "point_rel_diff": dict(zip(PARAM_NAMES, point_rel.tolist(), strict=True)),
        "ci_width_rel_diff": dict(zip(PARAM_NAMES, width_rel.tolist(), strict=True)),
        "ci_endpoint_diff_over_width": dict(zip(PARAM_NAMES, end_rel.tolist(), strict=True)),
        "speedup": ref_total / t_total,
        "targets": {
            "time_under_15s": t_total < 15,
            "point_within_1e-3": bool(point_rel.max() < 1e-3),
            "ci_within_5pct": bool(width_rel.max() < 0.05 and end_rel.max() < 0.05),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(
        f"{'param':<6} {'lab':>10} {'reference':>10} {'rel diff':>9}   {'lab 95% CI':>22} {'reference 95% CI':>22} {'width diff':>10}"
    )
    for k, name in enumerate(PARAM_NAMES):
        print(
            f"{name:<6} {lab_point[k]:>10.5g} {ref['point'][k]:>10.5g} {point_rel[k]:>9.1e}   "
            f"[{lab_ci[k, 0]:>9.4g}, {lab_ci[k, 1]:>9.4g}] [{ref_ci[k, 0]:>9.4g}, {ref_ci[k, 1]:>9.4g}] {100 * width_rel[k]:>9.2f}%"
        )
    scaled = " (scaled from a subset: --quick)" if args.quick else ""
    print(f"\nlab: point {t_point:.2f} s, point + {args.resamples} resamples {t_total:.2f} s")
    print(
        f"reference{scaled}: grid {ref['time_grid_s']:.1f} s + bootstrap {ref['time_boot_s']:.1f} s = {ref_total:.1f} s"
    )
    print(
        f"speedup {ref_total / t_total:.0f}x; default-tolerance L-BFGS-B alpha CI {np.round(ref['default_tol_alpha_ci'], 4).tolist()} (collapsed)"
    )
    print(f"targets: {result['targets']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
