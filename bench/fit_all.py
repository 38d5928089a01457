"""Benchmark: `scaling-lab fit --approach all` with bootstraps on the shipped Chinchilla data.

Times the command two ways, each `--repeats` times (the best is quoted; every run is kept):

- as a command: `python -m experiments.main fit --example chinchilla --json` in a fresh
  process (import, load, every fit, JSON), wall and CPU (user + sys of the child);
- in-process: `run_fits` + `fit_document` after the imports, per fit as well (Approach 2,
  Approach 3, the frontier), so a regression points at its stage.

Defaults are the command's: 1,000 resamples for Approaches 1 and 2, 4,000 for Approach 3,
200 for the frontier. The target is <= 3 s wall for the command on a 2-core machine; on a
shared machine wall time includes waiting for a core, so the load average is recorded too.

    .venv/bin/python bench/fit_all.py              # writes bench/results/fit_all.json
    .venv/bin/python bench/fit_all.py --repeats 5
    git archive OLD analysis experiments lab | tar -x -C /tmp/base   # then, same load for both:
    .venv/bin/python bench/fit_all.py --baseline /tmp/base
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "results" / "fit_all.json"
COMMAND = [sys.executable, "-m", "experiments.main", "fit", "--example", "chinchilla", "--json"]
TARGET_S = 3.0


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run_once(tree: Path) -> dict[str, float]:
    """Wall and CPU seconds of the command run from `tree` (cwd and PYTHONPATH: that tree)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cpu0, t0 = _child_cpu(), time.perf_counter()
    done = subprocess.run(COMMAND, cwd=tree, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _child_cpu() - cpu0
    if done.returncode != 0:
        raise SystemExit(f"fit failed in {tree} ({done.returncode}): {done.stderr.strip()}")
    json.loads(done.stdout)  # the document is whole
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}


def time_command(repeats: int, baseline: Path | None) -> dict[str, list[dict[str, float]]]:
    """The command in a fresh interpreter, `repeats` times; with `baseline` (another source
    tree, e.g. `git archive` of an older commit), that tree's command alternately with this
    one's, so both see the same load on a shared machine."""
    runs: dict[str, list[dict[str, float]]] = {"this": [], **({"baseline": []} if baseline else {})}
    for _ in range(repeats):
        runs["this"].append(_run_once(ROOT))
        if baseline:
            runs["baseline"].append(_run_once(baseline))
    return runs


def time_in_process(repeats: int) -> dict[str, object]:
    """Import time once, then each stage and the whole of run_fits + fit_document."""
    t0 = time.perf_counter()
    from analysis.approach2 import fit_approach2
    from analysis.approach3 import fit_approach3
    from analysis.frontier import fit_frontier
    from analysis.pipeline import fit_document, run_fits
    from analysis.sources import load

    imports = time.perf_counter() - t0
    ds = load("example:chinchilla")
    p = ds.points
    stages = {
        "approach2": lambda: fit_approach2(p, n_boot=1000),
        "approach3": lambda: fit_approach3(p["N"], p["D"], p["loss"], n_boot=4000),
        "frontier": lambda: fit_frontier(p, n_boot=200),
        "all (run_fits + fit_document)": lambda: json.dumps(fit_document(run_fits(ds))),
    }
    out: dict[str, object] = {"import_s": round(imports, 3)}
    for name, fn in stages.items():
        walls, cpus = [], []
        for _ in range(repeats):
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        out[name] = {"best_wall_s": round(min(walls), 3), "best_cpu_s": round(min(cpus), 3)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument(
        "--baseline",
        type=Path,
        metavar="TREE",
        help="also time the command of this source tree, alternately (same load)",
    )
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    load_before = os.getloadavg()[0]
    runs = time_command(args.repeats, args.baseline)
    in_process = time_in_process(args.repeats)
    command = runs["this"]
    best = min(r["wall_s"] for r in command)
    result = {
        "command": " ".join(["scaling-lab", *COMMAND[3:]]),
        "bootstrap": {"approach1_2": 1000, "approach3": 4000, "frontier": 200},
        "command_runs": command,
        "command_best_wall_s": best,
        "command_best_cpu_s": min(r["cpu_s"] for r in command),
        "in_process": in_process,
        "target_s": TARGET_S,
        "meets_target": best <= TARGET_S,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
    }
    if args.baseline:
        base = runs["baseline"]
        result["baseline"] = {
            "tree": str(args.baseline),
            "runs": base,
            "best_wall_s": min(r["wall_s"] for r in base),
            "best_cpu_s": min(r["cpu_s"] for r in base),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"fit --approach all (command): best {best:.2f} s wall, "
        f"{result['command_best_cpu_s']:.2f} s CPU over {args.repeats} runs (target {TARGET_S} s)"
    )
    if args.baseline:
        b = result["baseline"]
        print(
            f"  baseline {args.baseline}: best {b['best_wall_s']:.2f} s wall, {b['best_cpu_s']:.2f} s CPU"
        )
    for name, v in in_process.items():
        print(f"  {name}: {v}")
    print(f"load average {result['machine']['load_average_1min']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
