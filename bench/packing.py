"""The same set of runs three ways on this machine: one after another, as today's `--jobs 2`,
and grouped (one vmapped step per shape, `lab.group_train`) in 2 jobs; plus the per-size
measurement that sets the runner's grouping threshold.

    python bench/packing.py                    # the reduced set (below), ~15 min on 2 cores
    python bench/packing.py --main-scale 1     # the two sizes' main runs at full length (hours)

The set: `cpu_study`'s LR-tuning runs of its two smallest sizes (5 LRs x 300 steps each) and
the main runs of those two sizes, their lengths divided by `--main-scale` (default 64; the
relative lengths, and so a group's uneven ends, are kept). Each way runs in child processes
started the way the sweep runner starts them: "sequential" is one process with XLA's default
threads; "jobs2" is two children with the runner's single-thread flags (`experiments.jobs.
child_env`), pinned only on a quiet host (`should_pin`), each with half the runs (longest
first, greedy by FLOPs, as claims hand them out); "grouped" is the same two children, each
training its half as groups of one shape (`group_key`, N <= the threshold, at most 8 runs).

Each way runs `--rounds` times (default 2), the order reversed every other round; reported
per way: the mean wall time (and each round's), model FLOPs (the runs' `C_detailed`, causal attention) and MFU =
FLOPs / (wall x machine peak), the peak measured in this session by the lab's matmul probe
on both cores (before and after; the best reading), also against the idle peak recorded in
bench/results/throughput_cpu.json. The threshold part trains 5 runs of one shape for each of
several sizes one after another and as one group (single-thread, one process) and reports the
speedup in wall time (setup, compilation, steps, evals) and in step time alone. The cpu_study
projection is a projection: the study's job time by size from its per-job MFU figures
(docs/study/README.md: 12% at 2e4, 22% at 1e5, 35% at 6.6e5-1.4e6), its runs at or under the
threshold sped up by this bench's measured grouped/jobs2 ratio. Writes bench/results/packing.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.jobs import available_cores, child_env, should_pin  # noqa: E402

STUDY_MFU = ((2e4, 0.12), (1e5, 0.22), (6.6e5, 0.35))  # docs/study/README.md, per job
STUDY_MACHINE_MFU, STUDY_MINUTES = 0.226, 59.5


def reduced_set(main_scale: float) -> list[dict[str, Any]]:
    """cpu_study's tuning runs and main runs of its two smallest sizes (configs as dicts)."""
    from experiments.context import build_grid
    from experiments.sweep_file import load_sweep
    from experiments.tuning import tuning_points

    spec = load_sweep("cpu_study")
    grid, _ = build_grid(spec, check_memory=False)
    smallest = sorted({p.N for p in grid.points})[:2]
    runs = []
    for point in tuning_points(spec, grid):
        if point.N in smallest:
            runs.append({"run_id": point.run_id, "config": point.config.to_dict()})
    for point in grid.points:
        if point.N in smallest:
            config = point.config
            steps = max(100, round(point.steps / main_scale))
            short = dataclasses.replace(config, num_tokens=steps * config.tokens_per_step)
            runs.append({"run_id": point.run_id, "config": short.to_dict()})
    return runs


def split(units: list[list[dict]], workers: int) -> list[list[list[dict]]]:
    """Greedy by FLOPs, largest first: what claims taken longest-first come to."""
    shares: list[list[list[dict]]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for unit in sorted(units, key=lambda u: -sum(_flops(r) for r in u)):
        i = loads.index(min(loads))
        shares[i].append(unit)
        loads[i] += sum(_flops(r) for r in unit)
    return shares


def _flops(run: dict) -> float:
    from lab.run_config import RunConfig

    config = RunConfig.from_dict(run["config"])
    return config.model.flops_per_token("causal") * config.num_tokens


def groups_of(runs: list[dict], threshold: float, max_size: int = 8) -> list[list[dict]]:
    from lab.group_step import group_key
    from lab.run_config import RunConfig

    by_key: dict[Any, list[dict]] = {}
    for run in runs:
        config = RunConfig.from_dict(run["config"])
        key = group_key(config) if config.model.num_params() <= threshold else run["run_id"]
        by_key.setdefault(key, []).append(run)
    out = []
    for members in by_key.values():
        out += [members[i : i + max_size] for i in range(0, len(members), max_size)]
    return out


def child(units_file: str, out_dir: str, result_file: str) -> None:
    """Train the units in order: a one-run unit with lab.train, a larger one as a group."""
    from lab.group_train import train_group
    from lab.run_config import RunConfig
    from lab.train import train

    results = []
    for unit in json.loads(Path(units_file).read_text()):
        configs = [RunConfig.from_dict(r["config"]) for r in unit]
        dirs = [Path(out_dir) / r["run_id"] for r in unit]
        if len(unit) == 1:
            results.append(train(configs[0], dirs[0], progress=False, compilation_cache=None))
        else:
            results += train_group(configs, dirs, progress=False, compilation_cache=None)
    Path(result_file).write_text(json.dumps([_summary(r) for r in results]))


def _summary(result: dict) -> dict:
    return {
        "N": result["N"],
        "steps": result["steps"],
        "C_detailed": result["C_detailed"],
        "loss": result["loss"],
        "train_steps_s": result["timing"]["train_steps_s"],
        "total_s": result["timing"]["total_s"],
        "grouped": "group" in result["provenance"],
    }


def run_way(name: str, shares: list[list[list[dict]]], env: dict, pin: bool, tmp: Path) -> dict:
    """Start one child per share at once; the way's wall time is the last one's end."""
    cores = available_cores()
    procs = []
    started = time.perf_counter()
    for j, share in enumerate(shares):
        units, result = tmp / f"{name}{j}.json", tmp / f"{name}{j}.out.json"
        units.write_text(json.dumps(share))
        command = [sys.executable, __file__, "--child", str(units), str(tmp / name), str(result)]
        if pin:
            command = ["taskset", "-c", str(cores[j % len(cores)]), *command]
        procs.append((subprocess.Popen(command, env=env, cwd=ROOT), result))
    for proc, _ in procs:
        if proc.wait() != 0:
            raise RuntimeError(f"{name}: a child exited with {proc.returncode}")
    wall = time.perf_counter() - started
    results = [r for _, path in procs for r in json.loads(path.read_text())]
    return {"wall_s": wall, "processes": len(shares), "pinned": pin, "runs": results}


def peak_reading() -> float:
    """The machine's matmul peak now: the lab's probe, both cores as 2 CPU devices at once
    and one device using both cores; the better one."""
    code = (
        "import jax; from lab.runtime.device_peak import make_peak_probe as m;"
        "print(max(m('float32', 1024)(10), m('float32', 1024, jax.devices())(10)))"
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def threshold_sizes(sizes: list[float], steps: int, tmp: Path, env: dict) -> list[dict]:
    """Per size: 5 tuning-like runs of one shape, one after another vs one group."""
    from experiments.context import build_grid
    from experiments.sweep_file import load_sweep
    from experiments.tuning import tuning_points

    spec = load_sweep("cpu_study")
    grid, _ = build_grid(spec, check_memory=False)
    points = tuning_points(spec, grid)
    rows = []
    for n in sizes:
        chosen = [p for p in points if p.N == min({q.N for q in points}, key=lambda m: abs(m - n))]
        runs = [
            {
                "run_id": p.run_id,
                "config": dataclasses.replace(
                    p.config, num_tokens=steps * p.config.tokens_per_step
                ).to_dict(),
            }
            for p in chosen
        ]
        one = run_way(f"t{n:.0e}seq", [[[r] for r in runs]], env, False, tmp)
        group = run_way(f"t{n:.0e}grp", [[runs]], env, False, tmp)
        step_seq = sum(r["train_steps_s"] for r in one["runs"])
        step_grp = group["runs"][0]["train_steps_s"]
        rows.append(
            {
                "N": chosen[0].N,
                "runs": len(runs),
                "steps": steps,
                "sequential_wall_s": one["wall_s"],
                "group_wall_s": group["wall_s"],
                "wall_speedup": one["wall_s"] / group["wall_s"],
                "sequential_step_s": step_seq,
                "group_step_s": step_grp,
                "step_speedup": step_seq / step_grp if step_grp else math.nan,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def study_projection(threshold: float, speedup: float) -> dict[str, Any]:
    """cpu_study's machine MFU if its runs at or under `threshold` ran `speedup`x faster."""
    from experiments.context import build_grid
    from experiments.sweep_file import load_sweep
    from experiments.tuning import tuning_points

    spec = load_sweep("cpu_study")
    grid, _ = build_grid(spec, check_memory=False)
    points = list(grid.points) + tuning_points(spec, grid)

    def job_mfu(n: float) -> float:
        (n0, m0), *_ = STUDY_MFU
        if n <= n0:
            return m0
        for (a, ma), (b, mb) in itertools.pairwise(STUDY_MFU):
            if n <= b:
                x = (math.log(n) - math.log(a)) / (math.log(b) - math.log(a))
                return ma + x * (mb - ma)
        return STUDY_MFU[-1][1]

    time_by = [(p.N, p.detailed_flops / job_mfu(p.N)) for p in points]  # x 1 / core peak
    total = sum(t for _, t in time_by)
    small = sum(t for n, t in time_by if n <= threshold)
    fraction = small / total
    new_time = 1 - fraction + fraction / speedup
    return {
        "method": "projection, not a re-run: cpu_study's job time per run = detailed FLOPs / "
        "per-job MFU(N) (docs/study/README.md figures, interpolated in log N); the runs at or "
        "under the grouping threshold take 1/speedup of their time, the rest unchanged",
        "threshold_params": threshold,
        "speedup_applied": speedup,
        "share_of_job_time_under_threshold": fraction,
        "machine_mfu_before": STUDY_MACHINE_MFU,
        "machine_mfu_projected": STUDY_MACHINE_MFU / new_time,
        "wall_minutes_before": STUDY_MINUTES,
        "wall_minutes_projected": STUDY_MINUTES * new_time,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=3, metavar=("UNITS", "OUT", "RESULT"))
    parser.add_argument("--main-scale", type=float, default=64.0)
    parser.add_argument("--threshold-sizes", default="2e4,1e5,2.5e5,6.6e5")
    parser.add_argument("--threshold-steps", type=int, default=96)
    parser.add_argument("--ways", default="sequential,jobs2,grouped,grouped_all")
    parser.add_argument("--threshold-from", help="a packing.json whose threshold rows to reuse")
    parser.add_argument("--rounds", type=int, default=2, help="each way this many times")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "packing.json"))
    parser.add_argument(
        "--group-max-params", type=float, help="group up to this N (default: the measured one)"
    )
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    load_before = os.getloadavg()
    peak_before = peak_reading()
    jobs_env = child_env()
    pin = should_pin(2)
    report: dict[str, Any] = {
        "machine": f"{os.cpu_count()}-core {os.uname().machine} CPU",
        "shared_host_note": "the 2 cores were shared with other developers' test runs during "
        "this bench (load average below): absolute numbers are low and noisy; the ways ran "
        "one after another in one session, so each met similar contention",
        "load_average_before": load_before,
        "pinned_jobs": pin,
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sizes = [float(s) for s in args.threshold_sizes.split(",") if s]
        if args.threshold_from:  # rows measured earlier (their session's load is in that file)
            rows = json.loads(Path(args.threshold_from).read_text())["threshold"]["sizes"]
        else:
            rows = threshold_sizes(sizes, args.threshold_steps, tmp, jobs_env)
        helps = [r["N"] for r in rows if r["wall_speedup"] >= 1.1]
        threshold = max(helps, default=0.0)
        report["threshold"] = {
            "rule": "largest measured N whose group of 5 trained >= 1.1x faster (wall time, "
            "setup and compilation included) than the same 5 runs one after another",
            "group_max_params": threshold,
            "sizes": rows,
        }
        runs = reduced_set(args.main_scale)
        report["set"] = {
            "description": f"cpu_study tuning runs of its 2 smallest sizes + their main runs "
            f"with lengths / {args.main_scale:g} (min 100 steps)",
            "runs": len(runs),
            "steps": [_steps(r) for r in runs],
            "params": sorted({_n(r) for r in runs}),
        }
        ways: dict[str, Any] = {}
        group_threshold = args.group_max_params or threshold
        report["grouped_threshold_params"] = group_threshold
        plans = {
            "sequential": ([[[r] for r in runs]], os.environ.copy(), False),
            "jobs2": (split([[r] for r in runs], 2), jobs_env, pin),
            "grouped": (split(groups_of(runs, group_threshold), 2), jobs_env, pin),
            # every run of one shape grouped, whatever the threshold says
            "grouped_all": (split(groups_of(runs, math.inf), 2), jobs_env, pin),
        }
        names = args.ways.split(",")
        walls: dict[str, list[float]] = {name: [] for name in names}
        for round_index in range(args.rounds):  # reversed every other round: no way always first
            for name in names if round_index % 2 == 0 else names[::-1]:
                shares, env, pinned = plans[name]
                print(f"round {round_index} way {name}", flush=True)
                way = run_way(f"{name}{round_index}", shares, env, pinned, tmp)
                walls[name].append(way["wall_s"])
                print(f"  {way['wall_s']:.1f} s", flush=True)
                ways[name] = {**way, "wall_s_rounds": walls[name]}
        for name in names:
            ways[name]["wall_s"] = sum(walls[name]) / len(walls[name])
    peak_after = peak_reading()
    peak = max(peak_before, peak_after)
    idle = json.loads((ROOT / "bench/results/throughput_cpu.json").read_text())
    idle_peak = idle["measured_peak_flops_all_devices"]
    for way in ways.values():
        flops = sum(r["C_detailed"] for r in way["runs"])
        way["model_flops"] = flops
        way["mfu"] = flops / (way["wall_s"] * peak)
        way["mfu_vs_idle_peak"] = flops / (way["wall_s"] * idle_peak)
        del way["runs"]
    report.update(
        {
            "peak_flops_before_after": [peak_before, peak_after],
            "peak_flops": peak,
            "idle_peak_flops_recorded": idle_peak,
            "load_average_after": os.getloadavg(),
            "ways": ways,
        }
    )
    if "jobs2" in ways:
        for name in ("grouped", "grouped_all", "sequential"):
            if name in ways:
                report[f"{name}_vs_jobs2_throughput"] = (
                    ways["jobs2"]["wall_s"] / ways[name]["wall_s"]
                )
    if "grouped_all_vs_jobs2_throughput" in report:
        # what cpu_study would gain if every run of the bench's sizes (< 1e5) were grouped
        ratio = report["grouped_all_vs_jobs2_throughput"]
        report["cpu_study_projection"] = study_projection(1e5, ratio)
    out = Path(args.out)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "set"}, indent=2))


def _n(run: dict) -> int:
    from lab.run_config import RunConfig

    return RunConfig.from_dict(run["config"]).model.num_params()


def _steps(run: dict) -> int:
    from lab.run_config import RunConfig

    return RunConfig.from_dict(run["config"]).num_steps


if __name__ == "__main__":
    main()
