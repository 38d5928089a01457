"""Overheads of one training run, as fractions of a typical CPU sweep run (~1e12 FLOPs).

Measures, with the real `scaling-lab train` command in fresh processes:
- cold start: empty persistent compilation cache (imports, corpus load, init, compile);
- warm start, another budget and peak LR: the same model shape with 0.8x the tokens and a
  third of the LR, as the next run of a sweep's column is (the schedule's numbers are data in
  the optimizer state, so it reuses the first run's executables);
- warm start: the same run again, cache populated;
- checkpoint save time and eval time (from the run's own timing record);
and, in-process, tokens/s against `steps_per_call` (small models are dispatch-bound on CPU).

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
    command = [sys.executable, "-m", "experiments.cli", "train", "--config", str(config_path)]
    command += ["--out", str(out), "--compilation-cache", str(cache)]
    env = {**os.environ, "SCALING_LAB_QUIET": "1"}
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, cwd=ROOT, capture_output=True)
    wall = time.perf_counter() - start
    return wall, json.loads((out / "result.json").read_text())


def overhead_row(label: str, wall: float, result: dict) -> dict:
    timing = result["timing"]
    # Training steps include those run inside the compiling first calls (at the median step
    # time): they are training, not overhead.
    steps = timing["train_steps_s"] + timing.get("first_calls_steps_s", 0.0)
    in_run = timing["total_s"]
    return {
        "label": label,
        "process_wall_s": wall,
        "in_run_total_s": timing["total_s"],
        "startup_outside_train_fn_s": wall - timing["total_s"],
        "setup_s": timing["setup_s"],
        "compile_and_first_steps_s": timing["compile_and_first_steps_s"],
        "eval_s": timing["eval_s"],
        "checkpoint_s": timing["checkpoint_s"],
        "train_steps_s": steps,
        "overhead_fraction": (wall - steps) / wall,
        "non_eval_overhead_fraction": (wall - steps - timing["eval_s"]) / wall,
        # A sweep's job workers are long-lived processes (JAX imported once per job), so a
        # run in a sweep pays only what happens inside the train call:
        "in_run_overhead_fraction": (in_run - steps) / in_run,
        "in_run_non_eval_overhead_fraction": (in_run - steps - timing["eval_s"]) / in_run,
        "tokens_per_s": result["throughput"]["tokens_per_s"],
        "mfu": result["throughput"]["mfu"],
    }


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
    args = parser.parse_args()

    import jax

    platform = jax.devices()[0].platform
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = run_config(args.params, args.flops, 32, 128, args.steps_per_call)
        config_path = tmp / "run.json"
        config_path.write_text(json.dumps(config))
        cache = tmp / "cache"
        other = run_config(args.params, 0.8 * args.flops, 32, 128, args.steps_per_call, lr=1e-3)
        other_path = tmp / "other.json"
        other_path.write_text(json.dumps(other))
        cold = overhead_row("cold cache", *timed_train(config_path, tmp / "cold", cache))
        new_budget = overhead_row(
            "warm, 0.8x D, lr/3", *timed_train(other_path, tmp / "other", cache)
        )
        warm = overhead_row("warm cache", *timed_train(config_path, tmp / "warm", cache))
    ks = steps_per_call_rows(args.params, [1, 4, 10], steps=200)
    report = {
        "platform": platform,
        "run": {"params": args.params, "flops": args.flops, "num_tokens": config["num_tokens"]},
        "overheads": [cold, new_budget, warm],
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
        f"{'':18} {'wall s':>8} {'steps s':>8} {'setup':>7} {'compile':>8} {'eval':>6} "
        f"{'ckpt':>6} {'overhead':>9} {'w/o eval':>9} {'in-run':>7} {'w/o eval':>9}"
    )
    for row in (cold, new_budget, warm):
        print(
            f"{row['label']:18} {row['process_wall_s']:8.1f} {row['train_steps_s']:8.1f} "
            f"{row['setup_s']:7.2f} {row['compile_and_first_steps_s']:8.2f} {row['eval_s']:6.2f} "
            f"{row['checkpoint_s']:6.2f} {row['overhead_fraction']:9.1%} "
            f"{row['non_eval_overhead_fraction']:9.1%} {row['in_run_overhead_fraction']:7.1%} "
            f"{row['in_run_non_eval_overhead_fraction']:9.1%}"
        )
    print("steps_per_call  tokens/s   MFU")
    for row in ks:
        print(f"{row['steps_per_call']:>14} {row['tokens_per_s']:9.0f} {row['mfu']:6.1%}")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
