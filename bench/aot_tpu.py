"""XLA's estimates for the lab's train step on real TPU topologies, compiled on this CPU host.

    python bench/aot_tpu.py                       # tpu_pod's shapes on v5p-128, ~1B on v5p-128
    python bench/aot_tpu.py --sweep tpu_pod --target v5p-128 --one-b-target v5p-128

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
from experiments.target_plan import grid_without_corpus, plan_on_target
from lab.aot import compile_step
from lab.memory import estimate_memory
from lab.presets import model_for_params
from lab.run_config import RunConfig

ONE_B = {
    "model": {
        "params": 1e9,
        "ctx": 2048,
        "vocab_size": 32000,
        "position": "rope",
        "mlp": "swiglu",
        "compute_dtype": "bfloat16",
    },
    "batch_size": 256,
    "mesh": {"data": -1, "fsdp": 16},
}


def row(report, config: RunConfig) -> dict:
    """The report plus the arithmetic memory estimate's weights + optimizer state."""
    estimate = estimate_memory(config.model, config.mesh, config.train_batch_size, report.devices)
    state_estimate = estimate.weights + estimate.optimizer
    state_xla = report.argument_bytes  # params + Adam moments (+ the batch shard, scalars)
    return {
        **report.as_dict(),
        "model": config.model.to_dict(),
        "estimate_state_bytes": state_estimate,
        "estimate_vs_xla_state": state_estimate / state_xla,
        "estimate_total_bytes": estimate.total,
    }


def one_b_config(extra: dict) -> RunConfig:
    table = {**ONE_B, **extra}
    model = model_for_params(
        **{"target": table["model"]["params"]},
        **{k: v for k, v in table["model"].items() if k != "params"},
    )
    tokens = table["batch_size"] * model.ctx * 1000
    return RunConfig.from_dict(
        {
            "model": {**model.to_dict(), **table.get("model_features", {})},
            "num_tokens": tokens,
            "batch_size": table["batch_size"],
            "mesh": table["mesh"],
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="tpu_pod")
    parser.add_argument("--target", default="v5p-128")
    parser.add_argument("--one-b-target", default="v5p-128")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    spec = load_sweep(args.sweep)
    plan = plan_on_target(grid_without_corpus(spec).points, args.target, log=log)
    configs = {}
    for point in grid_without_corpus(spec).points:
        configs.setdefault(id(plan.report_for(point)), point.config)
    shapes = [row(r, configs[id(r)]) for r in plan.reports.values()]
    one_b = one_b_config({})
    log(f"compiling ~1B ({one_b.model.num_params():,}) for {args.one_b_target} ...")
    record = {
        "machine": f"{platform.node()} ({os.cpu_count()} CPUs): compiled here, estimated for TPU",
        "estimate": "XLA's compilation (memory) and cost model (time): not measurements",
        "sweep": {"name": spec.name, "target": args.target, "shapes": shapes},
        "one_b": {
            "target": args.one_b_target,
            **row(compile_step(one_b, args.one_b_target), one_b),
        },
        "chip_hours": plan.chip_hours,
    }
    out = Path(args.out) / "aot_tpu.json"
    out.write_text(json.dumps(record, indent=1) + "\n")
    for entry in [*shapes, record["one_b"]]:
        print(
            f"N={entry['params']:>14,} fits={entry['fits']!s:5} "
            f"peak {entry['peak_bytes'] / 2**30:6.1f}/{entry['hbm_bytes'] / 2**30:.0f} GiB "
            f"XLA/lab FLOPs {entry['flops_ratio']:.3f} est. MFU {entry['mfu']:.1%} "
            f"state estimate/XLA {entry['estimate_vs_xla_state']:.3f}"
        )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
