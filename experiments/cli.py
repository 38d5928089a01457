"""The `scaling-lab` console script: one dispatcher, subcommands owned by each package.

`experiments` is the orchestration layer, so it is the only package allowed to
import both `lab` and `analysis`. Each package exposes `register(subparsers)`
and keeps heavy imports (JAX) inside its handlers, so `scaling-lab fit` never
loads JAX.
"""

from __future__ import annotations

import argparse
import sys
import textwrap

DESCRIPTION = textwrap.dedent(
    """\
    scaling-lab: language-model scaling laws by experiment.

    For a compute budget C, how big a model (N parameters) and how many tokens (D)?
    The lab answers by measurement: it trains IsoFLOP sweeps of a sharded JAX/Flax
    transformer and fits Chinchilla's Approaches 1, 2 and 3 to the results.

    training (lab):        info, data, train, sample
    sweeps (experiments):  sweep plan|run|status|verify|table, demo
    analysis:              fit, report, plan
    """
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scaling-lab",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _registrars():
        register(subparsers)
    return parser


def _registrars():
    """Each package's `register`; none of these modules imports JAX at module level."""
    from analysis import cli as analysis_cli
    from experiments import sweep_cli
    from lab import cli as lab_cli

    return [lab_cli.register, sweep_cli.register, analysis_cli.register]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
