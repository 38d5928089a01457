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
    best = {name: min(r["outside_per_run_s"] for r in rows[name]) for name in rows}
    gaps = {name: min(r["gap_per_run_s"] for r in rows[name]) for name in rows}
    walls = {name: min(r["wall_s"] for r in rows[name]) for name in rows}
    extra = best["ray"] - best["local"]
    gap = gaps["ray"] - gaps["local"]
    tiny = cpu_tiny_run_s()
    same = all(r["losses"] == rows["local"][0]["losses"] for r in rows["local"] + rows["ray"])
    summary = {
        "sweep": args.sweep,
        "slots": SLOTS,
        "repeats": args.repeats,
        "rows": {
            name: [{k: v for k, v in r.items() if k != "losses"} for r in rs]
            for name, rs in rows.items()
        },
        "outside_per_run_s": best,
        "ray_extra_per_run_s": extra,
        "gap_per_run_s": gaps,
        "ray_extra_gap_per_run_s": gap,
        "ray_extra_gap_share_of_cpu_tiny_run": gap / tiny if tiny else None,
        "ray_extra_share_of_wall": (walls["ray"] - walls["local"]) / walls["ray"],
        "cpu_tiny_mean_run_s": tiny,
        "ray_extra_share_of_cpu_tiny_run": extra / tiny if tiny else None,
        "target_share": 0.02,
        "losses_equal": same,
        "host": platform.node(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"Ray's scheduling overhead: {extra:+.2f} s per run against the local executor "
        f"({summary['ray_extra_share_of_wall']:+.1%} of the {args.sweep} sweep's wall time)"
        + (
            f"; {extra / tiny:+.2%} of a mean cpu_tiny run ({tiny:.1f} s), target < 2%"
            if tiny
            else ""
        )
        + f"; losses equal: {same}"
    )
    print(f"idle gap between runs: {gaps['local']:.2f} s local, {gaps['ray']:.2f} s Ray per run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
