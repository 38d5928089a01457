"""How much of a sweep's wall time is spent outside training steps (issue 5's target: < 10%).

Runs a sweep (default cpu_tiny) into a fresh directory, or reads a finished one (--reuse),
and splits the time of every run (result.json `timing`) into training steps and the rest:
setup (corpus, mesh, init), compilation and first steps, evals, checkpoints. The sweep-level
fraction also charges what no run sees: process start, JAX import, grid solving, claims,
tables, and workers idling at the end:

    outside = 1 - sum(train_steps_s) / (wall_s * jobs)

Run it twice: the second run finds a warm compilation cache (the number to quote).

    .venv/bin/python bench/sweep_overhead.py [--sweep cpu_tiny] [--jobs 0] [--reuse DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PARTS = ("setup_s", "compile_and_first_steps_s", "train_steps_s", "eval_s", "checkpoint_s")


def summarise(root: Path, wall_s: float | None, jobs: int) -> dict:
    runs = []
    for path in sorted((root / "runs").glob("*/result.json")):
        result = json.loads(path.read_text())
        timing = result["timing"]
        runs.append({"run_id": path.parent.name, "steps": result["steps"], **timing})
    totals = {part: sum(r[part] for r in runs) for part in (*PARTS, "total_s")}
    inside_runs = 1 - totals["train_steps_s"] / totals["total_s"] if totals["total_s"] else None
    summary = {
        "sweep_dir": str(root),
        "runs": len(runs),
        "jobs": jobs,
        "wall_s": wall_s,
        "run_time_totals_s": totals,
        "outside_fraction_of_run_time": inside_runs,
        "per_run": runs,
        "host": platform.node(),
        "python": platform.python_version(),
    }
    if wall_s:
        summary["outside_fraction_of_sweep_wall"] = 1 - totals["train_steps_s"] / (wall_s * jobs)
    return summary


def print_table(summary: dict) -> None:
    print(f"{'run_id':<28} {'steps':>6} " + " ".join(f"{p[:-2]:>12}" for p in PARTS) + "   total")
    for r in summary["per_run"]:
        print(
            f"{r['run_id']:<28} {r['steps']:>6} "
            + " ".join(f"{r[p]:>12.2f}" for p in PARTS)
            + f" {r['total_s']:>7.2f}"
        )
    t = summary["run_time_totals_s"]
    print(
        f"{'sum':<28} {'':>6} "
        + " ".join(f"{t[p]:>12.2f}" for p in PARTS)
        + f" {t['total_s']:>7.2f}"
    )
    print(f"outside training steps, of run time: {summary['outside_fraction_of_run_time']:.1%}")
    if summary.get("wall_s"):
        print(
            f"sweep wall {summary['wall_s']:.1f} s with {summary['jobs']} job(s); outside training "
            f"steps, of wall x jobs: {summary['outside_fraction_of_sweep_wall']:.1%}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="cpu_tiny")
    parser.add_argument("--out", default=str(REPO / "runs" / "bench_sweep_overhead"))
    parser.add_argument("--jobs", type=int, default=0, help="0: the runner's default")
    parser.add_argument("--reuse", help="summarise this finished sweep dir instead of running")
    parser.add_argument("--wall", type=float, help="with --reuse: the sweep's wall time")
    parser.add_argument("--json", default=str(REPO / "bench" / "results" / "sweep_overhead.json"))
    args = parser.parse_args()

    from experiments.jobs import auto_jobs

    jobs = args.jobs or auto_jobs()
    if args.reuse:
        root, wall = Path(args.reuse), args.wall
    else:
        from experiments.runner import RunnerOptions, run_sweep

        root = Path(args.out)
        shutil.rmtree(root, ignore_errors=True)
        tic = time.perf_counter()
        run_sweep(args.sweep, str(root), RunnerOptions(jobs=jobs, progress=False))
        wall = time.perf_counter() - tic
    summary = summarise(root, wall, jobs)
    summary["sweep"] = args.sweep
    print_table(summary)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
