"""XLA's estimates for the lab's train step on real TPU topologies, compiled on this CPU host.

    python bench/aot_tpu.py                 # tpu_pod's smallest, median, largest shapes + ~1B
    python bench/aot_tpu.py --shapes all    # every shape of tpu_pod (19 compiles)

For each shape: XLA's per-device bytes (arguments, outputs, temporaries) against HBM, XLA's
FLOPs against the lab's count, the estimated step time (XLA's cost model, or its roofline),
and from it the estimated MFU; and the lab's arithmetic estimate of weights + optimizer state
(`lab.memory`) against XLA's argument bytes (which are exactly those, plus the batch).
Estimates, not measurements: no chip ran anything. Needs libtpu (`pip install -e '.[tpu]'`).
Writes bench/results/aot_tpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from experiments.sweep_file import load_sweep
from experiments.target_plan import grid_without_corpus, plan_on_target, shape_key
from lab.aot import compile_step
from lab.config import MeshConfig
from lab.memory import estimate_memory
from lab.presets import model_for_params
from lab.run_config import RunConfig

ONE_B_MODEL = {
    "ctx": 2048,
    "vocab_size": 32000,
    "position": "rope",
    "mlp": "swiglu",
    "compute_dtype": "bfloat16",
    "scan_layers": True,
    "remat": "save-dots",
}


def row(report, config: RunConfig) -> dict:
    """The report plus the arithmetic memory estimate's weights + optimizer state."""
    estimate = estimate_memory(config.model, config.mesh, config.train_batch_size, report.devices)
    state_estimate = estimate.weights + estimate.optimizer
    return {
        **report.as_dict(),
        "model": config.model.to_dict(),
        "estimate_state_bytes": state_estimate,
        # XLA's argument bytes are the params and Adam moments, plus a batch shard and scalars
        "estimate_vs_xla_state": state_estimate / report.argument_bytes,
        "estimate_total_bytes": estimate.total,
        "estimate_vs_xla_peak": estimate.total / report.peak_bytes,
    }


def one_b_config(batch_size: int, fsdp: int) -> RunConfig:
    """A ~1B model (the shape rule, GPT-style 32k vocabulary) with the tpu_pod settings."""
    model = model_for_params(1e9, **ONE_B_MODEL)
    return RunConfig(
        model=model,
        num_tokens=20 * model.num_params() // (batch_size * model.ctx) * batch_size * model.ctx,
        batch_size=batch_size,
        mesh=MeshConfig(data=-1, fsdp=fsdp),
    )


def chosen_points(points, which: str):
    """'all' shapes of the grid, or 'ends': the smallest, median and largest."""
    shapes = sorted({shape_key(p.config): p for p in points}.values(), key=lambda p: p.N)
    if which == "all":
        return shapes
    return [shapes[i] for i in sorted({0, len(shapes) // 2, len(shapes) - 1})]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="tpu_pod")
    parser.add_argument("--target", default="v5p-128")
    parser.add_argument("--one-b-target", default="v5p-128")
    parser.add_argument("--shapes", default="ends", choices=("ends", "all"))
    parser.add_argument("--one-b-batch", type=int, default=256)
    parser.add_argument("--one-b-fsdp", type=int, default=16)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    spec = load_sweep(args.sweep)
    points = chosen_points(grid_without_corpus(spec).points, args.shapes)
    plan = plan_on_target(points, args.target, log=log)
    shapes = [row(plan.report_for(p), p.config) for p in points]
    one_b = one_b_config(args.one_b_batch, args.one_b_fsdp)
    log(f"compiling ~1B ({one_b.model.num_params():,}) for {args.one_b_target} ...")
    one_b_report = compile_step(one_b, args.one_b_target)
    record = {
        "machine": f"{platform.node()} ({os.cpu_count()} CPUs): compiled here, estimated for TPU",
        "estimate": "XLA's compilation (memory) and cost model (time): not measurements",
        "sweep": {"name": spec.name, "target": args.target, "shapes": shapes},
        "one_b": {"target": args.one_b_target, **row(one_b_report, one_b)},
    }
    out = Path(args.out) / "aot_tpu.json"
    out.write_text(json.dumps(record, indent=1) + "\n")
    for entry in [*shapes, record["one_b"]]:
        print(
            f"N={entry['params']:>14,} fits={entry['fits']!s:5} "
            f"peak {entry['peak_bytes'] / 2**30:6.1f}/{entry['hbm_bytes'] / 2**30:.0f} GiB "
            f"XLA/lab FLOPs {entry['flops_ratio']:.3f} est. MFU {entry['mfu']:.1%} "
            f"state estimate/XLA {entry['estimate_vs_xla_state']:.3f} "
            f"total estimate/XLA peak {entry['estimate_vs_xla_peak']:.2f}"
        )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
