"""The `scaling-lab` console script: one dispatcher, subcommands owned by each package.

`experiments` is the orchestration layer, so it is the only package allowed to import both
`lab` and `analysis`. Each package exposes `register(subparsers)` in its `cli` module and
keeps heavy imports (JAX) inside its handlers, so `scaling-lab fit` never loads JAX.

Errors are caught here, once: a handler raises `ConfigError` (lab, experiments) or
`AnalysisError` (analysis) and the user sees one line naming the problem and the fix.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import textwrap

from analysis.errors import AnalysisError
from lab.errors import ConfigError
from lab.exit_codes import (
    EXIT_DIVERGED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NO_SPACE,
    EXIT_OK,
    EXIT_PREEMPTED,
    EXIT_USAGE,
)
from lab.runtime.disk import DiskFullError, format_bytes, free_bytes
from lab.runtime.provenance import package_version

EXIT_CODES = textwrap.dedent(
    f"""\
    exit codes:
      {EXIT_OK}    success
      {EXIT_FAILED}    something failed: a sweep's run raised or could not be read (the runs are
           named), verify found a mismatch
      {EXIT_USAGE}    bad input (config, path, table, option); the message names the fix
      {EXIT_DIVERGED}    `train`: the run diverged (recorded in its result.json; a sweep's
           diverged runs are data, not a failure: exit 0)
      {EXIT_NO_SPACE}   no space left on a device (the message names the path and the free
           space); free space and run the same command again: it resumes bitwise
      {EXIT_PREEMPTED}   preempted (SIGTERM): checkpoint saved; run the same command to resume
      {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
    """
)

DESCRIPTION = textwrap.dedent(
    """\
    scaling-lab: language-model scaling laws by experiment.

    For a compute budget C, how big a model (N parameters) and how many tokens (D)?
    The lab answers by measurement: it trains IsoFLOP sweeps of a sharded JAX/Flax
    transformer and fits Chinchilla's Approaches 1, 2 and 3 to the results.

    training (lab):        info, data, train, sample
    sweeps (experiments):  sweep plan|run|status|verify|table|samples, demo, compile
    analysis:              fit, report, plan
    """
)


def version() -> str:
    """The installed package's version (a wheel has no git checkout to ask)."""
    return package_version()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scaling-lab",
        description=DESCRIPTION,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"scaling-lab {version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _registrars():
        register(subparsers)
    return parser


def _registrars():
    """Each package's `register`; none of these modules imports JAX at module level."""
    from analysis import cli as analysis_cli
    from experiments import cli as sweep_cli
    from experiments import compile_command
    from lab import cli as lab_cli

    return [lab_cli.register, sweep_cli.register, compile_command.register, analysis_cli.register]


def main(argv: list[str] | None = None) -> int:
    from lab.runtime.platforms import skip_absent_tpu

    skip_absent_tpu()  # libtpu on a CPU host (for `compile`) must not make JAX probe for chips
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_OK
    name = f"scaling-lab {args.command}"
    try:
        return int(args.func(args) or 0)
    except (ConfigError, AnalysisError) as error:
        return _fail(name, str(error))
    except ModuleNotFoundError as error:
        if error.name and error.name.split(".")[0] in _TRAIN_MODULES:
            return _fail(
                name,
                f"this command needs the training extra ({error.name} is not installed): "
                "pip install 'scaling-lab[train]'",
            )
        raise
    except OSError as error:
        return _os_error(name, error)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


_TRAIN_MODULES = {"jax", "jaxlib", "flax", "optax", "orbax", "tensorflow_datasets", "etils"}


def _fail(name: str, message: str, code: int = EXIT_USAGE) -> int:
    print(f"{name}: error: {message}", file=sys.stderr)
    return code


def _os_error(name: str, error: OSError) -> int:
    """A file-system failure (read-only directory, full disk, missing path) in one line."""
    if isinstance(error, BrokenPipeError):  # `scaling-lab ... | head` closed our stdout
        _silence_stdout()
        return EXIT_OK
    where = f" {error.filename}" if error.filename else ""
    if error.errno == errno.ENOSPC:
        if isinstance(error, DiskFullError):  # lab's: names the run dir and its free space
            return _fail(name, error.strerror, EXIT_NO_SPACE)
        free = format_bytes(free_bytes(error.filename)) if error.filename else "unknown"
        message = f"no space left on the device of{where} ({free} free); free space, then run again"
        return _fail(name, message, EXIT_NO_SPACE)
    return _fail(name, f"cannot access{where}: {error.strerror or error}")


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the exit flush cannot raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
