"""A cosine sweep and its branching twin, side by side: does one trunk per size give the same
frontier for less compute? (issue 17; `python -m analysis.branching_study COSINE_DATA BRANCHING_DATA
--out docs/study/branching`, on the two sweeps' data folders from `scaling-lab sweep export`).

- every shared (N, D, seed) point's loss under both, and the differences against seed noise
  (the spread between seeds of one (N, D) within each sweep);
- Approach 2's a and b with intervals, tokens per parameter at each budget, and the
  held-out-largest-budget check, for both;
- FLOPs spent and time, from each folder's costs.csv (every run directory, trunk segments
  included).
The verdict lines restate the issue's targets: a within 0.05 and each inside the other's
interval; branching at most 50% of the cosine sweep's FLOPs. No JAX here.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.approach2 import fit_approach2
from analysis.holdout import holdout_largest
from analysis.loading import load_sweep_dir

COSTS = "costs.csv"  # experiments.run_costs writes it; read here as a plain table
A_TOLERANCE = 0.05
FLOP_SHARE_TARGET = 0.5
DEFAULT_COOLDOWN = 0.2  # lab.optim's default cooldown_fraction


def shared_points(cosine: pd.DataFrame, branching: pd.DataFrame) -> pd.DataFrame:
    """Rows present in both sweeps (same N, D and seed) with both losses and the difference."""
    keys = ["N", "D", "seed"]
    merged = cosine[[*keys, "budget", "loss"]].merge(
        branching[[*keys, "loss"]], on=keys, suffixes=("_cosine", "_branching")
    )
    merged["difference"] = merged["loss_branching"] - merged["loss_cosine"]
    return merged.sort_values(["budget", "N", "seed"]).reset_index(drop=True)


def seed_spread(points: pd.DataFrame) -> list[float]:
    """|loss difference| between seeds of the same (N, D): what a rerun alone moves."""
    spreads = []
    for _, group in points.groupby(["N", "D"]):
        if len(group) > 1:
            spreads.append(float(group["loss"].max() - group["loss"].min()))
    return spreads


def fit_summary(points: pd.DataFrame, n_boot: int) -> dict[str, object]:
    """Approach 2 (a, b, intervals, tokens/param per budget) and the held-out check."""
    fit = fit_approach2(points, n_boot=n_boot)
    budgets = sorted(points["budget"].unique())
    out: dict[str, object] = {
        "a": fit.a,
        "b": fit.b,
        "ci": {k: list(v) for k, v in fit.ci.items()},
        "tokens_per_param": [fit.tokens_per_param(float(C)) for C in budgets],
    }
    try:
        out["holdout"] = holdout_largest(points)
    except Exception as error:  # a grid without 3 budgets of 3+ sizes: say so, go on
        out["holdout"] = {"error": str(error)}
    return out


def sweep_file(path: Path) -> dict:
    """The data folder's sweep.toml (what `sweep export` copies), or {} without one."""
    try:
        return tomllib.loads((path / "sweep.toml").read_text())
    except FileNotFoundError:
        return {}


def grid_flop_share(points: pd.DataFrame, cooldown_fraction: float) -> float:
    """The least share of one-run-per-point FLOPs that branching can train on this grid.

    Each (N, seed) trains one trunk to (1 - f) of its largest D, then a cooldown of f x D per
    point, so it costs 6N [(1 - f) max D + f sum D] against 6N sum D for one run per point:
    a size whose FLOPs sit in its largest budget saves little whatever the code does."""
    f = cooldown_fraction
    per_trunk = points.groupby(["N", "seed"])["D"].agg(["max", "sum"])
    n = per_trunk.index.get_level_values("N").to_numpy(dtype=float)
    branching = n * ((1 - f) * per_trunk["max"] + f * per_trunk["sum"])
    return float(branching.sum() / (n * per_trunk["sum"]).sum())


def cost(path: Path) -> dict[str, float]:
    """FLOPs (sweep convention) and time of a sweep, from the costs.csv that `scaling-lab
    sweep export` writes (one row per run directory, so a branching sweep's trunk segments,
    which have no row of results.csv, count too); the LR-tuning stage apart (each sweep
    tunes with its own schedule: reported, not compared)."""
    if not (path / COSTS).exists():
        raise SystemExit(
            f"{path} has no {COSTS}; export the sweep first (`scaling-lab sweep export "
            f"SWEEP_DIR --out {path}`) and compare the data folders"
        )
    table = pd.read_csv(path / COSTS)
    tuning = table["tuning"].astype(str).str.lower() == "true"
    main, tune = table[~tuning], table[tuning]
    ends = pd.to_datetime(main["finished_at"], utc=True)
    starts = ends - pd.to_timedelta(main["total_s"], unit="s")
    every_end = pd.to_datetime(table["finished_at"], utc=True)
    every_start = every_end - pd.to_timedelta(table["total_s"], unit="s")
    return {
        "flops_C": float(main["flops_C"].sum(skipna=True)),
        "flops_spent": float(main["work_flops"].sum()),
        "job_seconds": float(main["total_s"].sum()),
        "tuning_flops": float(tune["work_flops"].sum()),
        "tuning_seconds": float(tune["total_s"].sum()),
        "span_seconds": (ends.max() - starts.min()).total_seconds() if len(main) else 0.0,
        "sweep_span_seconds": (every_end.max() - every_start.min()).total_seconds()
        if len(table)
        else 0.0,
    }


def compare(cosine_dir: Path, branching_dir: Path, n_boot: int = 1000) -> dict[str, object]:
    sweeps = {"cosine": load_sweep_dir(cosine_dir), "branching": load_sweep_dir(branching_dir)}
    shared = shared_points(sweeps["cosine"].points, sweeps["branching"].points)
    noise = [d for ds in sweeps.values() for d in seed_spread(ds.points)]
    fits = {name: fit_summary(ds.points, n_boot) for name, ds in sweeps.items()}
    costs = {"cosine": cost(cosine_dir), "branching": cost(branching_dir)}
    a_c, a_b = fits["cosine"]["a"], fits["branching"]["a"]
    ci_c, ci_b = fits["cosine"]["ci"].get("a"), fits["branching"]["ci"].get("a")
    share = costs["branching"]["flops_spent"] / costs["cosine"]["flops_spent"]
    files = {"cosine": sweep_file(cosine_dir), "branching": sweep_file(branching_dir)}
    folders = {"cosine": cosine_dir, "branching": branching_dir}
    names = {k: files[k].get("sweep", {}).get("name", folders[k].name) for k in files}
    cooldown = files["branching"].get("optimizer", {}).get("cooldown_fraction", DEFAULT_COOLDOWN)
    points = sweeps["cosine"].points
    return {
        "names": names,
        "grid_flop_share": {
            "cooldown_fraction": cooldown,
            "at_cooldown": grid_flop_share(points, cooldown),
            "no_cooldown": grid_flop_share(points, 0.0),
        },
        "shared_points": len(shared),
        "difference": {
            "mean": float(shared["difference"].mean()),
            "median_abs": float(shared["difference"].abs().median()),
            "max_abs": float(shared["difference"].abs().max()),
        },
        "seed_noise": {
            "pairs": len(noise),
            "median_abs": float(np.median(noise)) if noise else None,
        },
        "fits": fits,
        "cost": costs,
        "verdict": {
            "a_difference": abs(a_c - a_b),
            "a_within_tolerance": abs(a_c - a_b) <= A_TOLERANCE,
            "each_a_in_the_other_interval": bool(
                ci_c and ci_b and ci_b[0] <= a_c <= ci_b[1] and ci_c[0] <= a_b <= ci_c[1]
            ),
            "flop_share": share,
            "flop_share_met": share <= FLOP_SHARE_TARGET,
        },
        "_table": shared,
    }


def markdown(doc: dict[str, object]) -> str:
    """report.md: the verdict, the fits side by side, then every shared point."""
    v, f, c, g = doc["verdict"], doc["fits"], doc["cost"], doc["grid_flop_share"]
    names = doc["names"]

    def ci(name: str, key: str) -> str:
        lo_hi = f[name]["ci"].get(key)
        return (
            f"{f[name][key]:.3f} [{lo_hi[0]:.3f}, {lo_hi[1]:.3f}]"
            if lo_hi
            else f"{f[name][key]:.3f}"
        )

    lines = [
        f"# {names['cosine']} (cosine) vs {names['branching']} (WSD trunks + cooldown branches)",
        "",
        f"- a: {ci('cosine', 'a')} vs {ci('branching', 'a')}; difference {v['a_difference']:.3f} "
        f"({'met' if v['a_within_tolerance'] else 'NOT met'}: <= {A_TOLERANCE}); each inside "
        f"the other's interval: {'yes' if v['each_a_in_the_other_interval'] else 'NO'}",
        f"- b: {ci('cosine', 'b')} vs {ci('branching', 'b')}",
        f"- FLOPs trained (tuning apart): {c['branching']['flops_spent']:.3g} vs "
        f"{c['cosine']['flops_spent']:.3g} "
        f"= {v['flop_share']:.1%} ({'met' if v['flop_share_met'] else 'NOT met'}: <= 50%); "
        f"this grid's floor: {g['at_cooldown']:.1%} with a {g['cooldown_fraction']:.0%} "
        f"cooldown, {g['no_cooldown']:.1%} with none (each size and seed's largest point "
        "costs a whole trunk either way)",
        f"- job time: {c['branching']['job_seconds'] / 60:.1f} vs "
        f"{c['cosine']['job_seconds'] / 60:.1f} minutes summed over runs (trunk segments "
        f"included), first start to last finish {c['branching']['span_seconds'] / 60:.1f} vs "
        f"{c['cosine']['span_seconds'] / 60:.1f} minutes (with the LR-tuning stage "
        f"{c['branching']['sweep_span_seconds'] / 60:.1f} vs "
        f"{c['cosine']['sweep_span_seconds'] / 60:.1f}); the LR-tuning stage apart: "
        f"{c['branching']['tuning_flops']:.3g} vs {c['cosine']['tuning_flops']:.3g} FLOPs",
        f"- {doc['shared_points']} shared points: loss difference (branching - cosine) mean "
        f"{doc['difference']['mean']:+.4f}, median |d| {doc['difference']['median_abs']:.4f}, "
        f"max |d| {doc['difference']['max_abs']:.4f}; seed noise median |d| "
        + (
            f"{doc['seed_noise']['median_abs']:.4f} over {doc['seed_noise']['pairs']} seed pairs"
            if doc["seed_noise"]["median_abs"] is not None
            else "unknown (no seed pairs)"
        ),
        "",
        "| budget | N | D | seed | loss cosine | loss branching | difference |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in doc["_table"].itertuples():
        lines.append(
            f"| {row.budget:.3g} | {row.N:,.0f} | {row.D:,.0f} | {row.seed:.0f} | "
            f"{row.loss_cosine:.4f} | {row.loss_branching:.4f} | {row.difference:+.4f} |"
        )
    lines += ["", "| budget | tokens/param cosine | tokens/param branching |", "|---|---|---|"]
    for tc, tb in zip(
        f["cosine"]["tokens_per_param"], f["branching"]["tokens_per_param"], strict=False
    ):
        lines.append(f"| {tc['C']:.3g} | {_with_ci(tc)} | {_with_ci(tb)} |")
    lines += [
        "",
        "Held out: the largest budget, predicted from the others (targets: loss within 2%, "
        "N_opt within 1.5x)",
        "",
        "| sweep | fit | N_opt predicted | measured | ratio | loss predicted | measured | error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("cosine", "branching"):
        held = f[name]["holdout"]
        if "predictions" not in held:
            lines.append(f"| {name} | - | {held.get('error', 'not available')} |  |  |  |  |  |")
            continue
        measured = held["measured"]
        for fit, pred in held["predictions"].items():
            lines.append(
                f"| {name} | {fit} | {pred['N_opt']:.3g} | {measured['N_opt']:.3g} | "
                f"{pred['N_opt_ratio']:.2f} | {pred['loss']:.4f} | {measured['loss']:.4f} | "
                f"{pred['loss_rel_error']:+.2%} |"
            )
    return "\n".join(lines) + "\n"


def _with_ci(entry: dict) -> str:
    """'value [lo, hi]' of a tokens-per-parameter entry (no interval: the value alone)."""
    ci = entry.get("ci")
    return f"{entry['value']:.1f} [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else f"{entry['value']:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.branching_study")
    parser.add_argument("cosine", type=Path, help="the cosine sweep's data folder (cpu_study)")
    parser.add_argument("branching", type=Path, help="its branching twin's (cpu_study_branching)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args(argv)
    doc = compare(args.cosine, args.branching, args.bootstrap)
    args.out.mkdir(parents=True, exist_ok=True)
    doc["_table"].to_csv(args.out / "shared_points.csv", index=False, float_format="%.6g")
    (args.out / "report.md").write_text(markdown(doc))
    summary = {k: v for k, v in doc.items() if k != "_table"}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    print(markdown(doc).split("\n\n| budget")[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
