"""Overheads of one training run, as fractions of a typical CPU sweep run (~1e12 FLOPs).

A sweep's job workers are long-lived processes that train run after run (lab.train.train),
so the numbers that matter are measured inside such a worker:
- worker, cold cache: empty persistent compilation cache, the worker's first run;
- worker, warm cache, first run of the process: another worker already compiled the shape;
- worker, another shape, first of its shape in this process (warm cache);
- worker, the first shape again at 0.8x the tokens and a third of the LR, as the next run of
  a sweep's column is: the process kept its jitted functions (lab.step_cache) and the
  schedule is optimizer state, so it neither traces nor compiles;
and, for comparison, `scaling-lab train` in fresh processes (JAX import and process start
counted, cold and warm cache); checkpoint save and eval times come from each run's own
timing record; in-process tokens/s against `steps_per_call` (small models are
dispatch-bound on CPU).

Writes bench/results/train_overhead_<platform>.json and prints a table.
    python bench/train_overhead.py [--params 5e4] [--flops 1e12]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def run_config(
    params: float, flops: float, batch: int, ctx: int, steps_per_call: int, lr: float = 3e-3
) -> dict:
    from lab.presets import model_for_params

    model = model_for_params(params, vocab_size=260, ctx=ctx)
    tokens_per_step = batch * ctx
    steps = max(1, round(flops / (6 * model.num_params() * tokens_per_step)))
    return {
        "model": model.to_dict(),
        "num_tokens": steps * tokens_per_step,
        "batch_size": batch,
        "steps_per_call": steps_per_call,
        "eval_batches": 4,
        "eval_batch_size": 32,
        "checkpoint_every_seconds": 1e9,
        "optimizer": {"peak_lr": lr},
    }


def timed_train(config_path: Path, out: Path, cache: Path) -> tuple[float, dict]:
    command = [sys.executable, "-m", "experiments.main", "train", "--config", str(config_path)]
    command += ["--out", str(out), "--compilation-cache", str(cache)]
    env = {**os.environ, "SCALING_LAB_QUIET": "1"}
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, cwd=ROOT, capture_output=True)
    wall = time.perf_counter() - start
    return wall, json.loads((out / "result.json").read_text())


def overhead_row(label: str, wall: float, result: dict) -> dict:
    timing = result["timing"]
    # Training steps include those run inside the compiling first calls (at the median step
    # time): they are training, not overhead. Evals are work a run must do, except the first
    # eval call's compilation, which counts as overhead.
    steps = timing["train_steps_s"] + timing.get("first_calls_steps_s", 0.0)
    evals = timing["eval_s"] - timing.get("eval_compile_s", 0.0)
    in_run = timing["total_s"]
    return {
        "label": label,
        "process_wall_s": wall,
        "in_run_total_s": timing["total_s"],
        "startup_outside_train_fn_s": wall - timing["total_s"],
        "setup_s": timing["setup_s"],
        "compile_and_first_steps_s": timing["compile_and_first_steps_s"],
        "eval_s": timing["eval_s"],
        "eval_compile_s": timing.get("eval_compile_s", 0.0),
        "checkpoint_s": timing["checkpoint_s"],
        "train_steps_s": steps,
        "overhead_fraction": (wall - steps) / wall,
        "non_eval_overhead_fraction": (wall - steps - evals) / wall,
        # A sweep's job workers are long-lived processes (JAX imported once per job), so a
        # run in a sweep pays only what happens inside the train call:
        "in_run_overhead_fraction": (in_run - steps) / in_run,
        "in_run_non_eval_overhead_fraction": (in_run - steps - evals) / in_run,
        "tokens_per_s": result["throughput"]["tokens_per_s"],
        "mfu": result["throughput"]["mfu"],
    }


def worker_rows(configs: list[tuple[str, Path]], cache: Path, out: Path) -> list[dict]:
    """Train `configs` one after another in one fresh worker process; one row per run."""
    command = [sys.executable, __file__, "--worker", json.dumps([str(c) for _, c in configs])]
    command += ["--worker-cache", str(cache), "--worker-out", str(out)]
    env = {**os.environ, "SCALING_LAB_QUIET": "1"}
    subprocess.run(command, check=True, env=env, cwd=ROOT, capture_output=True)
    results = [
        json.loads((out / f"run{i}" / "result.json").read_text()) for i in range(len(configs))
    ]
    return [
        overhead_row(label, result["timing"]["total_s"], result)
        for (label, _), result in zip(configs, results, strict=True)
    ]


def run_worker(config_paths: list[str], cache: str, out: str) -> None:
    """The worker side: what a sweep job does, run after run in one process."""
    from lab.run_config import RunConfig
    from lab.train import train

    for i, path in enumerate(config_paths):
        config = RunConfig.from_dict(json.loads(Path(path).read_text()))
        train(config, Path(out) / f"run{i}", progress=False, compilation_cache=cache)


def steps_per_call_rows(params: float, ks: list[int], steps: int) -> list[dict]:
    from lab.run_config import RunConfig
    from lab.train import train

    rows = []
    for k in ks:
        table = run_config(params, 1.0, 32, 128, k)
        table["num_tokens"] = steps * 32 * 128
        table["eval_fractions"] = [1.0]
        table["eval_batches"] = 1
        with tempfile.TemporaryDirectory() as out:
            result = train(RunConfig.from_dict(table), out, progress=False)
        rows.append({"steps_per_call": k, **result["throughput"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=float, default=5e4)
    parser.add_argument("--flops", type=float, default=1e12)
    parser.add_argument("--steps-per-call", type=int, default=8)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-cache", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(json.loads(args.worker), args.worker_cache, args.worker_out)
        return

    import jax

    platform = jax.devices()[0].platform
    k = args.steps_per_call
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def write(name: str, table: dict) -> Path:
            (tmp / name).write_text(json.dumps(table))
            return tmp / name

        config = run_config(args.params, args.flops, 32, 128, k)
        first = write("run.json", config)
        other = write("other.json", run_config(args.params, 0.8 * args.flops, 32, 128, k, lr=1e-3))
        bigger = write("bigger.json", run_config(2 * args.params, args.flops, 32, 128, k))
        sequence = [
            ("first run", first),
            ("another shape", bigger),
            ("first shape, 0.8x D, lr/3", other),
        ]
        worker_cold = worker_rows(
            [(f"worker, cold: {label}", path) for label, path in sequence],
            tmp / "worker_cache",
            tmp / "worker_cold",
        )
        worker_warm = worker_rows(
            [(f"worker, warm: {label}", path) for label, path in sequence],
            tmp / "worker_cache",
            tmp / "worker_warm",
        )
        cache = tmp / "cli_cache"
        cold = overhead_row("process, cold cache", *timed_train(first, tmp / "cold", cache))
        warm = overhead_row("process, warm cache", *timed_train(first, tmp / "warm", cache))
    ks = steps_per_call_rows(args.params, [1, 4, 10], steps=200)
    rows = [*worker_cold, *worker_warm, cold, warm]
    report = {
        "platform": platform,
        "run": {"params": args.params, "flops": args.flops, "num_tokens": config["num_tokens"]},
        "overheads": rows,
        "steps_per_call": ks,
        "target": "warm-cache overhead (startup + compile + checkpoint) < 5% of the run",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"train_overhead_{platform}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")

    print(
        f"run: ~{args.params:.0e} params, {args.flops:.0e} FLOPs, {config['num_tokens']:,} tokens"
    )
    print(
        f"{'':38} {'wall s':>7} {'steps s':>7} {'setup':>6} {'compile':>7} {'eval':>5} "
        f"{'ckpt':>5} {'overhead':>8} {'w/o eval':>8} {'in-run':>7} {'w/o eval':>8}"
    )
    for row in rows:
        print(
            f"{row['label']:38} {row['process_wall_s']:7.1f} {row['train_steps_s']:7.1f} "
            f"{row['setup_s']:6.2f} {row['compile_and_first_steps_s']:7.2f} {row['eval_s']:5.2f} "
            f"{row['checkpoint_s']:5.2f} {row['overhead_fraction']:8.1%} "
            f"{row['non_eval_overhead_fraction']:8.1%} {row['in_run_overhead_fraction']:7.1%} "
            f"{row['in_run_non_eval_overhead_fraction']:8.1%}"
        )
    print("steps_per_call  tokens/s   MFU")
    for row in ks:
        print(f"{row['steps_per_call']:>14} {row['tokens_per_s']:9.0f} {row['mfu']:6.1%}")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
