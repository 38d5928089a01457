"""`scaling-lab sweep plan|run|status|table|verify|samples|export` and `scaling-lab demo`.

Nothing here imports JAX at module level: the dispatcher loads this for every command.
Handlers raise ConfigError for bad input; the dispatcher prints it as one line (exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap

from lab.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_PREEMPTED

SWEEP_EPILOG = textwrap.dedent(
    """\
    A sweep file (TOML) names compute budgets, a size ladder and a run template; see
    experiments/configs/cpu_tiny.toml. Presets can be named without a path (cpu_tiny,
    cpu_study, gpu_chinchilla_ladder, tpu_pod).

    examples:
      scaling-lab sweep plan cpu_tiny
      scaling-lab sweep run cpu_tiny --out runs/tiny --jobs 2
      scaling-lab sweep status runs/tiny
      scaling-lab sweep run cpu_study --out gs://bucket/study --worker 3 --workers 8
      scaling-lab sweep run tpu_pod --out /mnt/shared/pod --executor ray --address auto
      scaling-lab sweep verify runs/tiny --runs 2
      scaling-lab sweep samples runs/tiny --prompt "def main("
    """
)


FILE_HELP = "sweep file (TOML), or a preset name: micro, cpu_tiny, cpu_study, ..."
DIR_HELP = "the sweep's results directory, as given to `sweep run --out` (local or gs://)"


def _subcommand(
    commands: argparse._SubParsersAction,
    name: str,
    help_text: str,
    description: str,
    examples: list[str],
) -> argparse.ArgumentParser:
    """A `sweep` subcommand with its description and examples in its --help."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    return commands.add_parser(
        name,
        help=help_text,
        description=textwrap.fill(description, 88),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    sweep = subparsers.add_parser(
        "sweep",
        help="IsoFLOP sweeps: plan, run (resumable, splittable), status, table, verify",
        description="Sweep model size against tokens at fixed compute budgets.",
        epilog=SWEEP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = sweep.add_subparsers(dest="sweep_command", metavar="SUBCOMMAND")

    plan = _subcommand(
        commands,
        "plan",
        "print the grid and estimated times; trains nothing",
        "Solve the sweep's IsoFLOP grid on this machine: per budget the model sizes, their "
        "tokens D, tokens/param, steps and estimated time (measured with a short run unless "
        "--throughput or --no-measure), the points dropped and why, and the LR-tuning stage.",
        [
            "scaling-lab sweep plan cpu_tiny",
            "scaling-lab sweep plan my_sweep.toml --no-measure",
            "scaling-lab sweep plan tpu_pod --target v5p-128",
        ],
    )
    plan.add_argument("file", metavar="FILE", help=FILE_HELP)
    plan.add_argument(
        "--target",
        help="a Cloud TPU slice (v5e-16, v5p-128, v5p-256x2): compile every distinct shape for "
        "it on this host (libtpu) and give XLA's memory per chip, estimated time and the "
        "sweep's chip-hours; shapes that do not fit are dropped with the numbers",
    )
    plan.add_argument(
        "--throughput",
        type=float,
        help="FLOP/s (detailed convention) to estimate times with, instead of measuring",
    )
    plan.add_argument("--no-measure", action="store_true", help="no time estimate at all")
    plan.set_defaults(func=_plan)

    run = _subcommand(
        commands,
        "run",
        "run the sweep into DIR (resumable, idempotent)",
        "Train every grid point into DIR (--out), skipping finished runs and resuming killed "
        "ones. Exits 1 naming the runs that failed (raised, or left a damaged config), 2 if "
        "the planner dropped every point.",
        [
            "scaling-lab sweep run cpu_tiny --out runs/tiny --jobs 2",
            "scaling-lab sweep run cpu_study --out gs://bucket/study --worker 3 --workers 8",
            "scaling-lab sweep run cpu_tiny --out runs/tiny --retry-failed",
        ],
    )
    run.add_argument("file", metavar="FILE", help=FILE_HELP)
    run.add_argument(
        "--out", required=True, metavar="DIR", help="results directory (local path or gs://...)"
    )
    run.add_argument("--worker", type=int, default=0, help="this worker's index (0-based)")
    run.add_argument("--workers", type=int, default=1, help="number of workers sharing DIR")
    run.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="runs at once on this host, each a child process with single-threaded XLA (CPU); "
        "default 0 = one per core on a CPU host (measured faster), 1 on GPU/TPU. "
        "--jobs 1 trains in this process",
    )
    pin = run.add_mutually_exclusive_group()
    pin.add_argument(
        "--pin", dest="pin", action="store_true", default=None, help="pin each job to a core"
    )
    pin.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="let the OS schedule jobs (default: pin only when the host is otherwise idle)",
    )
    run.add_argument("--retry-diverged", action="store_true", help="re-run diverged runs")
    run.add_argument("--retry-failed", action="store_true", help="re-run runs that raised")
    run.add_argument(
        "--claim-timeout",
        type=float,
        default=300.0,
        help="seconds without a heartbeat after which another worker takes a run over",
    )
    run.add_argument("--heartbeat", type=float, default=30.0, help="heartbeat period (s)")
    run.add_argument(
        "--no-wait",
        action="store_true",
        help="exit when nothing is left to claim instead of waiting for other workers' runs",
    )
    run.add_argument("--compilation-cache", default="default", help="JAX cache dir or 'none'")
    run.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local (default): claims in DIR, one machine or --worker/--workers; ray: every "
        "run a Ray task with the sweep file's [resources] (pip install 'scaling-lab[ray]')",
    )
    run.add_argument(
        "--address",
        help="with --executor ray: 'auto' (the cluster `ray start` began on this host) or the "
        "head's HOST:PORT; default: a private Ray instance on this host",
    )
    run.add_argument("--no-progress", action="store_true", help="no per-run progress bar")
    multi = run.add_argument_group(
        "multi-host",
        "Each run over several JAX processes (a TPU pod slice, several GPU hosts): start the "
        "same command on every host; process 0 claims runs and all train them together. "
        "On Cloud TPU VMs pass --distributed alone (JAX finds the slice).",
    )
    multi.add_argument("--distributed", action="store_true", help="jax.distributed.initialize()")
    multi.add_argument("--coordinator", help="HOST:PORT of process 0")
    multi.add_argument("--num-processes", type=int)
    multi.add_argument("--process-id", type=int)
    multi.add_argument("--local-devices", type=int, help="CPU only: fake devices per process")
    run.add_argument("--pin-cores", help=argparse.SUPPRESS)
    run.add_argument("--worker-name", help=argparse.SUPPRESS)
    run.set_defaults(func=_run)

    status = _subcommand(
        commands,
        "status",
        "runs done/running/left, FLOPs, ETA",
        "Count DIR's runs (done, diverged, failed, running, left; damaged ones named), the "
        "FLOPs done of the total and the time left. Reads only files: cheap to poll.",
        ["scaling-lab sweep status runs/tiny", "scaling-lab sweep status runs/tiny --json"],
    )
    status.add_argument("dir", metavar="DIR", help=DIR_HELP)
    status.add_argument(
        "--json", action="store_true", help="one JSON object (with a schema_version)"
    )
    status.set_defaults(func=_status)

    table = _subcommand(
        commands,
        "table",
        "rebuild results.csv and curves.csv from run dirs",
        "Rewrite DIR/results.csv, DIR/curves.csv and DIR/tables.json (row counts and "
        "checksums) from the run directories: the fix for a table cut short or edited.",
        ["scaling-lab sweep table runs/tiny"],
    )
    table.add_argument("dir", metavar="DIR", help=DIR_HELP)
    table.set_defaults(func=_table)

    verify = _subcommand(
        commands,
        "verify",
        "re-run k finished runs and compare final loss",
        "Re-train k finished runs of DIR from their recorded config.json in DIR/verify/ and "
        "compare final losses (bitwise on the same machine and XLA flags). Exits 1 on a "
        "mismatch, or when a config.json no longer matches the hash its result recorded.",
        ["scaling-lab sweep verify runs/tiny", "scaling-lab sweep verify runs/tiny --runs 3"],
    )
    verify.add_argument("dir", metavar="DIR", help=DIR_HELP)
    verify.add_argument("--runs", type=int, default=1, help="how many runs to re-run")
    verify.add_argument("--tolerance", type=float, help="allowed |loss difference|")
    verify.set_defaults(func=_verify)

    samples = _subcommand(
        commands,
        "samples",
        "DIR/samples.json: per budget, the optimal, smallest and largest run complete a prompt",
        "Complete one prompt with the compute-optimal, the smallest and the largest run of "
        "each budget (runs with a final checkpoint) and write DIR/samples.json for the report.",
        [
            "scaling-lab sweep samples runs/tiny",
            'scaling-lab sweep samples runs/tiny --prompt "def main(" --greedy',
        ],
    )
    samples.add_argument("dir", metavar="DIR", help=DIR_HELP)
    samples.add_argument("--prompt", help="text to continue (default 'def '; '' for symbols)")
    samples.add_argument("--max-new-tokens", type=int, default=64, help="tokens per sample")
    samples.add_argument("--seed", type=int, default=0, help="sampling seed (same for all runs)")
    samples.add_argument("--greedy", action="store_true", help="argmax instead of T=0.8, p=0.95")
    samples.set_defaults(func=_samples)

    export = _subcommand(
        commands,
        "export",
        "publish a finished sweep's tables (results, curves, sweep file, plan) into a folder",
        "Write DIR's results.csv, curves.csv.gz, sweep.toml, plan.json, samples.json and "
        "tables.json into OUT: everything `scaling-lab fit|report OUT/results.csv` needs, "
        "nothing else (the study data folders under docs/study/). Refuses a sweep with "
        "unfinished runs or tables that do not match its tables.json.",
        ["scaling-lab sweep export runs/cpu_study --out docs/study/stdlib/data"],
    )
    export.add_argument("dir", metavar="DIR", help="a finished sweep's local results directory")
    export.add_argument("--out", required=True, metavar="OUT", help="the data folder to write")
    export.set_defaults(func=_export)
    sweep.set_defaults(func=lambda args: (sweep.print_help(), 0)[1])

    demo = subparsers.add_parser(
        "demo",
        help="the main job: run the cpu_tiny sweep, then the analysis report",
        description="Runs an IsoFLOP sweep on the embedded stdlib corpus (resumable: run it "
        "again to continue) and then fits and reports it.",
    )
    demo.add_argument("--out", default="runs/demo", help="results directory (default runs/demo)")
    demo.add_argument("--sweep", default="cpu_tiny", help="sweep file or preset (cpu_tiny)")
    demo.add_argument(
        "--jobs", type=int, default=0, help="parallel runs (default 0: one per core on CPU)"
    )
    demo.set_defaults(func=_demo)


def _plan(args: argparse.Namespace) -> int:
    from experiments.context import build_grid
    from experiments.plan import fixed_throughput, measure_throughput, plan_table
    from experiments.sweep_file import load_sweep

    spec = load_sweep(args.file)
    if args.target:
        from experiments.compile_command import plan_sweep_on_target

        return plan_sweep_on_target(spec, args.target)
    grid, facts = build_grid(spec)
    print(
        f"corpus {facts.name}: {facts.train_tokens:,} unique train tokens, vocab "
        f"{facts.vocab_size}, fingerprint {facts.fingerprint[:12]}"
    )
    throughput = None
    if args.throughput:
        throughput = fixed_throughput(args.throughput)
    elif not args.no_measure and grid.points:
        throughput = measure_throughput(grid, log=lambda m: print(m, file=sys.stderr))
    tuning = ()
    if spec.tuning is not None:
        from experiments.tuning import tuning_points

        tuning = tuple(tuning_points(spec, grid))
    print(plan_table(spec, grid, throughput, tuning))
    if spec.strategy == "branching":
        from experiments.branch_plan import branch_plan_lines
        from experiments.branching import branch_grid

        print("\n".join(branch_plan_lines(spec, grid, branch_grid(spec, grid), throughput, tuning)))
    from experiments.grouping import plan_lines, total_devices

    print("\n".join(plan_lines(spec.packing, [*tuning, *grid.points], total_devices())))
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.pin_cores:
        from experiments.jobs import pin_to_cores

        pin_to_cores([int(c) for c in args.pin_cores.split(",")])
    from experiments.runner import RunnerOptions, run_sweep

    on_ray = args.executor == "ray" or args.address is not None
    address = _ray_address(args) if on_ray else None
    if args.distributed or args.coordinator:
        _init_distributed(args)
        args.jobs = 1  # one process per host, each a part of every run
    options = RunnerOptions(
        worker=args.worker,
        workers=args.workers,
        jobs=args.jobs,
        pin=args.pin,
        retry_diverged=args.retry_diverged,
        retry_failed=args.retry_failed,
        claim_timeout_s=args.claim_timeout,
        heartbeat_s=args.heartbeat,
        wait=not args.no_wait,
        progress=False if args.no_progress else None,
        compilation_cache=None if args.compilation_cache == "none" else args.compilation_cache,
        worker_name=args.worker_name,
    )
    from lab.train import RunInterrupted

    try:
        if on_ray:
            from experiments.ray_executor import run_sweep_ray

            report = run_sweep_ray(args.file, args.out, options, address)
        else:
            report = run_sweep(args.file, args.out, options)
    except RunInterrupted as interrupted:
        print(f"scaling-lab sweep run: {interrupted}", file=sys.stderr)
        return EXIT_PREEMPTED
    if not args.worker_name:  # a --jobs child leaves the summary to its parent
        from experiments.status import format_status

        print(format_status(args.out))
        for run_id, message in report.failures.items():
            print(f"scaling-lab sweep run: run {run_id} failed: {message}", file=sys.stderr)
        if report.failures:
            print(
                f"scaling-lab sweep run: {len(report.failures)} run(s) failed; fix the cause "
                "and re-run with --retry-failed",
                file=sys.stderr,
            )
    return report.exit_code


def _ray_address(args: argparse.Namespace) -> str | None:
    from lab.errors import ConfigError

    if args.executor != "ray":
        raise ConfigError("--address is the Ray cluster's; add --executor ray")
    if args.distributed or args.coordinator:
        raise ConfigError("--executor ray starts each run's processes itself; drop --distributed")
    return args.address


def _init_distributed(args: argparse.Namespace) -> None:
    """Join the multi-process JAX cluster before anything else touches JAX."""
    if args.local_devices:
        from lab.runtime.cpu_devices import use_cpu_devices

        use_cpu_devices(args.local_devices)
    from lab.sharding import initialize_distributed

    initialize_distributed(args.coordinator, args.num_processes, args.process_id)


def _status(args: argparse.Namespace) -> int:
    from experiments.status import format_status, sweep_progress

    if args.json:
        print(json.dumps(sweep_progress(args.dir), indent=2))
    else:
        print(format_status(args.dir))
    return 0


def _table(args: argparse.Namespace) -> int:
    from experiments import sweep_dir
    from experiments.results import rebuild_tables

    sweep_dir.load_dir_sweep(args.dir)  # a sweep directory, not a typo that would be created
    rows, curve_rows = rebuild_tables(args.dir)
    print(
        f"wrote {args.dir}/results.csv ({rows} runs), curves.csv ({curve_rows} evals) and "
        "tables.json"
    )
    for run_id in sweep_dir.damaged_runs(args.dir):
        print(
            f"left out {run_id}: its result.json cannot be read (damaged); "
            f"`scaling-lab sweep run` trains it again",
            file=sys.stderr,
        )
    return 0


def _samples(args: argparse.Namespace) -> int:
    from experiments.samples import DEFAULT_SAMPLING, write_samples
    from lab.sampling import SamplingConfig

    sampling = SamplingConfig(greedy=True) if args.greedy else DEFAULT_SAMPLING
    write_samples(
        args.dir,
        prompt=args.prompt,
        max_new_tokens=args.max_new_tokens,
        sampling=sampling,
        seed=args.seed,
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from experiments.export import export_sweep, format_export

    print(format_export(export_sweep(args.dir, args.out)))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from experiments.verify import format_verification, pick_runs, verify_run

    runs = pick_runs(args.dir, args.runs)
    if not runs:
        print(f"no finished runs in {args.dir} to verify", file=sys.stderr)
        return EXIT_FAILED
    results = [verify_run(args.dir, run_id, args.tolerance) for run_id in runs]
    print(format_verification(results))
    return EXIT_OK if all(v.ok for v in results) else EXIT_FAILED


def _demo(args: argparse.Namespace) -> int:
    from experiments.demo import run_demo

    return run_demo(args.sweep, args.out, jobs=args.jobs)
