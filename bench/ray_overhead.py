"""Scheduling overhead per run of the Ray executor against the local one (issue 19's target:
< 2% of a cpu_tiny run's time).

Both executors run the same sweep (default `micro`) into fresh directories with two slots:
the local executor as `--jobs 2` (two single-threaded child workers), Ray as two 1-CPU
nodes of a loopback cluster (`ray.cluster_utils.Cluster`, started before the clock runs:
a cluster outlives sweeps). Each sweep is timed from the `sweep run` process's start to
its end, and what no run sees is charged to scheduling:

    outside per run = (wall_s x slots - sum of the runs' total_s) / runs

(process start, JAX import, grid, claims, tables, idle slots at the end, and for Ray the
connection, task submission and result collection), and, leaving out what comes before the
first run starts and after the last ends (per sweep, not per run), the slots' idle time
between runs:

    gap per run = (slots x (last end - first start) - sum of the runs' total_s) / runs

Ray's overhead is the difference of the two executors, per run, and as a share of a mean
cpu_tiny run (bench/results/sweep_overhead.json).
A warm-up sweep of each fills the compilation cache first; the best of `--repeats` counts.

    /work/venv-ray/bin/python bench/ray_overhead.py [--sweep micro] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SLOTS = 2


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    path = os.environ.get("PYTHONPATH")
    out.update(
        JAX_PLATFORMS="cpu",
        PYTHONPATH=f"{REPO}{os.pathsep}{path}" if path else str(REPO),
        SCALING_LAB_QUIET="1",
    )
    return out


def timed_sweep(sweep: str, out: Path, extra: list[str]) -> dict:
    command = [sys.executable, "-m", "experiments.main", "sweep", "run", sweep, "--out", str(out)]
    started = time.perf_counter()
    subprocess.run(
        [*command, "--no-progress", *extra], cwd=REPO, env=env(), check=True, capture_output=True
    )
    wall = time.perf_counter() - started
    runs = [json.loads(p.read_text()) for p in sorted(out.glob("runs/*/result.json"))]
    inside = sum(r["timing"]["total_s"] for r in runs)
    ends = [datetime.fromisoformat(r["provenance"]["finished_at"]).timestamp() for r in runs]
    starts = [end - r["timing"]["total_s"] for end, r in zip(ends, runs, strict=True)]
    return {
        "wall_s": wall,
        "runs": len(runs),
        "run_total_s": inside,
        "outside_per_run_s": (wall * SLOTS - inside) / len(runs),
        "gap_per_run_s": (SLOTS * (max(ends) - min(starts)) - inside) / len(runs),
        "losses": {r["provenance"].get("config_hash", ""): r["loss"] for r in runs},
    }


def cpu_tiny_run_s() -> float | None:
    path = REPO / "bench" / "results" / "sweep_overhead.json"
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    return record["run_time_totals_s"]["total_s"] / record["runs"]


def summarise(rows: dict[str, list[dict]], sweep: str, losses_equal: bool) -> dict:
    """Best and median of each executor's numbers; Ray's extra per run, against the target.

    The headline is the gap between runs: what each run costs to schedule. The wall-time
    difference also holds per-sweep costs (a driver without child processes starts faster),
    so it reads lower than zero as often as not on a busy host."""
    tiny = cpu_tiny_run_s()
    stats = {}
    for key in ("gap_per_run_s", "outside_per_run_s", "wall_s"):
        for how, pick in (("best", min), ("median", statistics.median)):
            values = {name: pick(r[key] for r in rs) for name, rs in rows.items()}
            stats[f"{key}_{how}"] = {**values, "ray_extra": values["ray"] - values["local"]}
    extra = stats["gap_per_run_s_median"]["ray_extra"]
    share = extra / tiny if tiny else None
    headline = (
        f"Ray's scheduling overhead on {sweep}: {extra:+.2f} s per run (median gap between runs "
        f"{stats['gap_per_run_s_median']['ray']:.2f} s vs {stats['gap_per_run_s_median']['local']:.2f} s "
        f"local)"
        + (f", {share:+.2%} of a mean cpu_tiny run ({tiny:.1f} s); target < 2%" if tiny else "")
        + f"; sweep wall time {stats['wall_s_median']['ray_extra'] / stats['wall_s_median']['ray']:+.1%} "
        f"(median); losses equal: {losses_equal}"
    )
    return {
        "sweep": sweep,
        "slots": SLOTS,
        "rows": rows,
        **stats,
        "cpu_tiny_mean_run_s": tiny,
        "ray_extra_per_run_s": extra,
        "ray_extra_share_of_cpu_tiny_run": share,
        "ray_extra_share_of_sweep_wall": stats["wall_s_median"]["ray_extra"]
        / stats["wall_s_median"]["ray"],
        "target_share": 0.02,
        "losses_equal": losses_equal,
        "headline": headline,
        "host": platform.node(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="micro")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "ray_overhead.json"))
    args = parser.parse_args()
    from experiments.ray_cluster import loopback_cluster

    rows: dict[str, list[dict]] = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory() as scratch, loopback_cluster(SLOTS, 1, env()) as cluster:
        ray_flags = ["--executor", "ray", "--address", cluster.address]
        flags = {"local": ["--jobs", str(SLOTS)], "ray": ray_flags}
        for name in ("local", "ray"):  # warm-up: compilation cache, Ray worker pools
            timed_sweep(args.sweep, Path(scratch) / f"warm-{name}", flags[name])
        for repeat in range(args.repeats):
            for name in ("local", "ray"):
                row = timed_sweep(args.sweep, Path(scratch) / f"{name}-{repeat}", flags[name])
                rows[name].append(row)
                print(
                    f"{name:>5} #{repeat}: wall {row['wall_s']:.1f} s, runs' own time "
                    f"{row['run_total_s']:.1f} s, outside per run {row['outside_per_run_s']:.2f} s, "
                    f"gap per run {row['gap_per_run_s']:.2f} s",
                    flush=True,
                )
    reference = rows["local"][0]["losses"]
    same = all(r.pop("losses") == reference for r in rows["local"] + rows["ray"])
    summary = summarise(rows, args.sweep, same)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(summary["headline"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
