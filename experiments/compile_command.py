"""`scaling-lab compile SOURCE --target v5p-128`: XLA's verdict on a run or sweep for a TPU slice.

SOURCE is a run config (as `train --config` takes) or a sweep file or preset (every distinct
shape of its grid). The train step is compiled for the target's real topology on this CPU
host (libtpu does it without a chip); see `lab.aot` and `experiments.target_plan`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import tomllib
from pathlib import Path

from lab.errors import ConfigError

EPILOG = textwrap.dedent(
    """\
    Targets are Cloud TPU accelerator types: v5e-16 (16 chips), v5p-128 (64 chips: v4 and
    v5p sizes count TensorCores, two per chip), v6e-64; add xK for K slices over DCN
    (v5p-256x2). Needs libtpu: pip install 'scaling-lab[tpu]'. Every figure is XLA's estimate
    (its memory assignment and cost model), not a measurement on the chip.

    examples:
      scaling-lab compile tpu_pod --target v5p-128
      scaling-lab compile run.toml --target v5e-16 --set batch_size=64 --json
      scaling-lab sweep plan tpu_pod --target v5p-256x2
    """
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compile",
        help="compile a run's or sweep's train step for a TPU slice: memory, FLOPs, est. speed",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", metavar="SOURCE", help="run config, sweep file or preset")
    parser.add_argument("--target", required=True, help="TPU target, e.g. v5e-16, v5p-256x2")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="run config override"
    )
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    parser.set_defaults(func=run)


def plan_sweep_on_target(spec, target_name: str, as_json: bool = False) -> int:
    """Every distinct shape of the sweep compiled for the target; the sweep's chip-hours
    (`compile SWEEP` and `sweep plan SWEEP --target`)."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # the TPU exists only as a topology here
    from experiments import target_plan
    from lab.tpu_targets import parse_target

    print(parse_target(target_name).describe(), file=sys.stderr if as_json else sys.stdout)
    grid = target_plan.grid_without_corpus(spec)
    log = lambda message: print(message, file=sys.stderr)  # noqa: E731
    plan = target_plan.plan_on_target(grid.points, target_name, log=log)
    if as_json:
        print(json.dumps([r.as_dict() for r in plan.reports.values()], indent=1))
    else:
        print(target_plan.plan_lines(spec, plan))
    return 0


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # the TPU exists only as a topology here
    from experiments import target_plan
    from lab.tpu_targets import parse_target

    sweep = _sweep_spec(args.source)
    if sweep is not None:
        if args.set:
            raise ConfigError("--set applies to a run config; edit the sweep file instead")
        return plan_sweep_on_target(sweep, args.target, args.json)
    target = parse_target(args.target)
    if not args.json:
        print(target.describe())
    from lab.aot import compile_step
    from lab.run_config import load_run_config

    report = compile_step(load_run_config(args.source, args.set), target)
    if args.json:
        print(json.dumps(report.as_dict(), indent=1))
        return 0
    plan = target_plan.TargetPlan(args.target, {None: report}, (), ())
    print("\n".join(target_plan.shape_lines(plan)))
    print(
        f"run: {report.num_steps:,} steps, estimated {report.run_hours:.3g} h and "
        f"{report.chip_hours:.3g} chip-hours (XLA estimates)"
    )
    return 0


def _sweep_spec(source: str):
    """The SweepSpec if SOURCE is a sweep preset or a file with a [sweep] table, else None."""
    from experiments.sweep_file import load_sweep, resolve_sweep_path

    path = Path(source)
    if not path.exists():
        return load_sweep(resolve_sweep_path(source))  # a preset, or a clear error
    if path.suffix == ".toml":
        try:
            table = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{source} is not valid TOML: {error}") from None
        if "sweep" in table:
            return load_sweep(path)
    return None
