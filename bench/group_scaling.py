"""Why grouping runs does not pay on a CPU core: the per-token rate of one core falls as a
step's batch grows, and a group of R runs is a step R times larger.

    python bench/group_scaling.py            # ~2 min, one core (single-threaded XLA)

For each size (cpu_study's shapes at ~2e4, ~4e4, ~1e5 parameters and its batch of 8), the
forward + backward pass (`jax.value_and_grad(lab.train_step.loss_fn)`, the step's dominant
cost) is timed three ways, interleaved over `--repeats` rounds (the median kept):

- one run's batch: the time of R separate steps is R x this;
- R runs vmapped (`jax.vmap` over stacked parameters and batches, as `lab.group_step` does);
- one run with an R-times larger batch (the same FLOPs, one set of weights): the control.
  If this is as slow as the vmapped group, the loss comes from the larger step, not vmap.

Reported: each way's time relative to R single steps (1.0 = no gain; < 1 pays) and the
model GFLOP/s (`lab.counting.flops_per_token`, causal, x tokens / time). Writes bench/results/group_scaling.json
with the machine's load average before and after (the ratios are measured in one process,
interleaved, so a steady load moves them less than the absolute figures).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from lab.counting import flops_per_token, num_params  # noqa: E402
from lab.model import Transformer  # noqa: E402
from lab.presets import model_for_params  # noqa: E402
from lab.train_step import loss_fn  # noqa: E402

SIZES = (2e4, 4e4, 1e5)


def seconds(fn, *args, calls: int) -> float:
    """Mean seconds per call after one warm call (compilation excluded)."""
    jax.block_until_ready(fn(*args))
    started = time.perf_counter()
    for _ in range(calls):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - started) / calls


def measure(target_params: float, batch: int, runs: int, repeats: int) -> dict:
    model = model_for_params(target_params)
    key = jax.random.PRNGKey(0)
    params = Transformer(model).init(key, jnp.zeros((1, model.ctx), jnp.int32))["params"]
    one_batch = jax.random.randint(key, (batch, model.ctx + 1), 0, model.vocab_size)
    single = jax.jit(jax.value_and_grad(loss_fn), static_argnums=1)
    grouped = jax.jit(jax.vmap(jax.value_and_grad(loss_fn), in_axes=(0, None, 0)), static_argnums=1)
    stacked_params = jax.tree.map(lambda x: jnp.stack([x] * runs), params)
    stacked_batches = jnp.stack([one_batch] * runs)
    big_batch = jnp.concatenate([one_batch] * runs)
    calls = max(3, int(2.0 / max(seconds(single, params, model, one_batch, calls=3), 1e-4) / runs))
    rounds: dict[str, list[float]] = {"single": [], "vmapped": [], "big_batch": []}
    for _ in range(repeats):  # interleaved, so a change in load meets every way
        rounds["single"].append(seconds(single, params, model, one_batch, calls=calls * runs))
        rounds["vmapped"].append(
            seconds(grouped, stacked_params, model, stacked_batches, calls=calls)
        )
        rounds["big_batch"].append(seconds(single, params, model, big_batch, calls=calls))
    median = {way: statistics.median(times) for way, times in rounds.items()}
    tokens = batch * model.ctx
    flops = flops_per_token(model) * tokens  # training (forward + backward), causal count
    return {
        "N": num_params(model),
        "model": model.to_dict(),
        "batch": batch,
        "runs": runs,
        "seconds": median,
        "vs_separate_steps": {
            "vmapped": median["vmapped"] / (runs * median["single"]),
            "big_batch": median["big_batch"] / (runs * median["single"]),
        },
        "gflops_per_s": {
            "single": flops / median["single"] / 1e9,
            "vmapped": runs * flops / median["vmapped"] / 1e9,
            "big_batch": runs * flops / median["big_batch"] / 1e9,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=8, help="per run (cpu_study's: 8)")
    parser.add_argument("--runs", type=int, default=5, help="group size (the tuning stage's 5 LRs)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "group_scaling.json"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows = []
    for size in SIZES:
        rows.append(measure(size, args.batch, args.runs, args.repeats))
        row = rows[-1]
        print(
            f"N={row['N']:>7,}: {args.runs} vmapped = {row['vs_separate_steps']['vmapped']:.2f}x, "
            f"one {args.runs}x batch = {row['vs_separate_steps']['big_batch']:.2f}x the time of "
            f"{args.runs} separate steps (GFLOP/s single {row['gflops_per_s']['single']:.1f})",
            flush=True,
        )
    result = {
        "machine": f"{os.cpu_count()}-core {os.uname().machine} CPU, one core used",
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "jax_version": jax.__version__,
        "sizes": rows,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
