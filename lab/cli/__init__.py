"""`lab`'s subcommands of the `scaling-lab` dispatcher (`experiments.main`), one module each.

- `info`: parameter counts, FLOPs per token, tokens for a budget, memory per device
- `data`: build (once) and describe a corpus
- `train`: one run to exactly its token budget, resumable
- `sample`: text from a trained run's checkpoint

Nothing here imports JAX at module level: the dispatcher loads these modules for every
command, the analysis ones included, which must run without JAX. Handlers raise
`ConfigError`; the dispatcher prints it as one line.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add info, data, train and sample to the dispatcher."""
    from lab.cli import data, info, sample, train

    for command in (info, data, train, sample):
        command.register(subparsers)
