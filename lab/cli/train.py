"""`scaling-lab train`: one run to exactly its token budget, resumable."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap

from lab.exit_codes import EXIT_DIVERGED, EXIT_OK, EXIT_PREEMPTED
from lab.run_status import RunStatus

TRAIN_EPILOG = textwrap.dedent(
    """\
    The config is a TOML file with a [model] table (explicit shape, `params = 3e5` for the
    shape rule, or `preset = "1m"`), num_tokens (D), and optional [optimizer], [mesh] and
    [data] tables. Every key can be overridden: --set optimizer.peak_lr=1e-3.

    The run directory holds config.json, metrics.jsonl, evals.jsonl, checkpoints/,
    TensorBoard event files (none with SCALING_LAB_TENSORBOARD=0) and, when the run ends,
    result.json. Running the same command again resumes a killed run from its
    last checkpoint, or returns at once if it finished. SIGTERM checkpoints and exits 75
    (on every host of a multi-host run, at one step, whichever host got it);
    a full disk exits 74 (free space, run it again: it resumes bitwise).

    examples:
      scaling-lab train --config lab/configs/run_tiny.toml --out runs/tiny
      scaling-lab train --config run.toml --set num_tokens=1048576 --set seed=1 --out runs/s1
    """
)


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train one run to exactly its token budget (resumable)",
        description="Train one model on exactly num_tokens tokens, with held-out evals at "
        "fixed FLOP fractions, checkpoints, and a result.json with provenance.",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--config", required=True, help="run config (TOML, or a run's config.json)")
    train.add_argument("--out", required=True, help="run directory (created; resumed if present)")
    train.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )
    train.add_argument(
        "--compilation-cache",
        default="default",
        help="persistent JAX compilation cache dir ('none' to disable; default "
        "~/.cache/scaling-lab/jax-compilation-cache or $SCALING_LAB_COMPILATION_CACHE)",
    )
    train.add_argument("--json", action="store_true", help="print the result record as JSON")
    train.add_argument(
        "--cpu-devices",
        "--local-devices",
        dest="cpu_devices",
        metavar="N|auto",
        help="CPU only: split this process's cores into N devices ('auto': one per core) and "
        "train data-parallel over them (1.3-1.7x tokens/s on 2 cores); in a "
        "multi-host rehearsal, the fake devices per process. Default: one device",
    )
    multi = train.add_argument_group(
        "multi-host",
        "One run over several processes (hosts): start the same command on every host with its "
        "own --process-id. On Cloud TPU VMs jax finds all of this itself; pass --distributed.",
    )
    multi.add_argument(
        "--distributed", action="store_true", help="call jax.distributed.initialize()"
    )
    multi.add_argument("--coordinator", help="HOST:PORT of process 0")
    multi.add_argument("--num-processes", type=int)
    multi.add_argument("--process-id", type=int)
    train.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from lab.run_config import load_run_config

    config = load_run_config(args.config, args.set)
    if args.cpu_devices:
        from lab.runtime.cpu_devices import use_cpu_devices

        use_cpu_devices(args.cpu_devices)
    _init_distributed(args)
    from lab.train import RunInterrupted, train

    try:
        result = train(config, args.out, compilation_cache=args.compilation_cache)
    except RunInterrupted as interrupted:
        print(f"scaling-lab train: {interrupted}", file=sys.stderr)
        return EXIT_PREEMPTED
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_summary(result, args.out)
    return EXIT_OK if result["status"] == RunStatus.DONE else EXIT_DIVERGED


def _init_distributed(args: argparse.Namespace) -> None:
    """Join a multi-process run before any JAX computation (a no-op for one process)."""
    if not (args.distributed or args.coordinator):
        return
    from lab.sharding import initialize_distributed

    initialize_distributed(args.coordinator, args.num_processes, args.process_id)


def _print_summary(result: dict, out: str) -> None:
    from lab.run_dir import result_path

    if result["status"] != RunStatus.DONE:
        print(f"run diverged: {result['divergence']['reason']} (recorded in {result_path(out)})")
        return
    throughput = result.get("throughput", {})
    print(
        f"final eval loss {result['loss']:.4f} nats/token | N = {result['N']:,} "
        f"({result['N_nonemb']:,} non-embedding) | D = {result['D']:,} tokens | "
        f"C = {result['C_6N']:.3g} FLOPs (6ND), {result['C_detailed']:.3g} (detailed)"
    )
    if throughput:
        print(
            f"{throughput['tokens_per_s']:,.0f} tokens/s, MFU {throughput['mfu']:.1%} of "
            f"{result['peak_flops']:.3g} FLOP/s ({result['peak_flops_source']} peak)"
        )
    print(f"result: {result_path(out)}")
