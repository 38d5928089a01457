"""`scaling-lab info`: what a model costs, before anything is trained.

    scaling-lab info --preset 1m
    scaling-lab info --params 3e5 --budget 1e15 --mesh 2,2,2 --batch 32
    scaling-lab info --config run.toml          # reads its [model] table
    scaling-lab info --params 3e5 --budget 1e13 --json

Prints parameter counts (total and non-embedding), training FLOPs per token (6N, 6N
non-embedding, detailed causal and full), the tokens a budget buys, and per-device memory on a
mesh. JAX is imported only inside the handler, and only if the mesh has a -1 axis.
"""

from __future__ import annotations

import argparse
import json
import math
import tomllib
from typing import Any

from lab.config import ModelConfig
from lab.errors import ConfigError

CONVENTIONS = ("6N", "6N_nonemb", "causal", "full")
INFO_SCHEMA_VERSION = 1  # of `info --json`: bump when a key changes meaning


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `info` subcommand to the dispatcher's subparsers."""
    parser = subparsers.add_parser(
        "info",
        help="parameter counts, FLOPs per token, tokens for a budget, memory per device",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", help="named preset, e.g. tiny, 1m, 10m, 125m")
    source.add_argument("--params", type=float, help="target parameter count, e.g. 3e5")
    source.add_argument("--config", help="TOML file with a [model] table (ModelConfig fields)")
    parser.add_argument("--ctx", type=int, help="context length override")
    parser.add_argument("--vocab-size", type=int, help="vocabulary size override")
    parser.add_argument("--budget", type=float, help="compute budget in FLOPs: tokens it buys")
    parser.add_argument("--mesh", default="1,1,1", help="data,fsdp,tensor (default 1,1,1)")
    parser.add_argument("--batch", type=int, default=32, help="global batch size (sequences)")
    parser.add_argument(
        "--json", action="store_true", help="one JSON object (with a schema_version)"
    )
    parser.set_defaults(func=run_info)
    return parser


def model_from_args(args: argparse.Namespace) -> ModelConfig:
    """The ModelConfig an `info` invocation describes."""
    from lab.presets import model_for_params, preset

    overrides = {}
    if args.ctx is not None:
        overrides["ctx"] = args.ctx
    if args.vocab_size is not None:
        overrides["vocab_size"] = args.vocab_size
    if args.preset:
        base = preset(args.preset)
        return ModelConfig.from_dict({**base.to_dict(), **overrides})
    if args.params is not None:
        return model_for_params(args.params, **overrides)
    try:
        with open(args.config, "rb") as f:
            table = tomllib.load(f)
    except OSError as error:
        raise ConfigError(f"cannot read config {args.config!r}: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config {args.config!r} is not valid TOML: {error}") from error
    if "model" not in table:
        raise ConfigError(f"config {args.config!r} has no [model] table")
    return ModelConfig.from_dict({**table["model"], **overrides})


def check_args(args: argparse.Namespace) -> None:
    """Numbers that would print nonsense (NaN or negative token counts) are bad input."""
    for name in ("budget", "params"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ConfigError(f"--{name} must be a positive finite number, got {value:g}")
    if args.batch < 1:
        raise ConfigError(f"--batch must be a positive number of sequences, got {args.batch}")
    for name in ("ctx", "vocab_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {value}")


def info_record(model: ModelConfig, budget: float | None, mesh: str, batch: int) -> dict:
    """What `info --json` prints: the same numbers as the text, as data."""
    from lab.counting import tokens_for_budget
    from lab.memory import estimate_memory

    estimate = estimate_memory(model, mesh, batch)
    record: dict[str, Any] = {
        "schema_version": INFO_SCHEMA_VERSION,
        "model": model.to_dict(),
        "params": model.num_params(),
        "params_nonemb": model.num_nonembedding_params(),
        "flops_per_token": {c: model.flops_per_token(c) for c in CONVENTIONS},
        "budget": budget,
        "tokens_for_budget": None,
        "mesh": mesh,
        "batch": batch,
        "memory_bytes": {
            part: getattr(estimate, part)
            for part in ("weights", "gradients", "optimizer", "activations", "total")
        },
    }
    if budget is not None:
        record["tokens_for_budget"] = {c: tokens_for_budget(model, budget, c) for c in CONVENTIONS}
    return record


def info_text(model: ModelConfig, budget: float | None, mesh: str, batch: int) -> str:
    """The report `scaling-lab info` prints."""
    from lab.counting import tokens_for_budget
    from lab.memory import estimate_memory, format_bytes
    from lab.units import flops_to_pf_days

    lines = [
        "model: "
        + ", ".join(f"{k}={v}" for k, v in model.to_dict().items())
        + f" (head_dim {model.head_dim})",
        f"parameters: {model.num_params():,} total (Chinchilla), "
        f"{model.num_nonembedding_params():,} non-embedding (Kaplan)",
        "training FLOPs per token:",
    ]
    for convention in CONVENTIONS:
        lines.append(f"  {convention:<10} {model.flops_per_token(convention):.4g}")
    if budget is not None:
        lines.append(f"budget {budget:.4g} FLOPs ({flops_to_pf_days(budget):.4g} PF-days) buys:")
        for convention in CONVENTIONS:
            tokens = tokens_for_budget(model, budget, convention)
            lines.append(
                f"  {convention:<10} {tokens:.4g} tokens "
                f"({tokens / model.num_params():.3g} tokens/param)"
            )
    estimate = estimate_memory(model, mesh, batch)
    lines.append(f"memory per device (mesh {mesh}, batch {batch}):")
    for part in ("weights", "gradients", "optimizer", "activations", "total"):
        lines.append(f"  {part:<12} {format_bytes(getattr(estimate, part))}")
    return "\n".join(lines)


def run_info(args: argparse.Namespace) -> int:
    """Handler of `scaling-lab info` (a ConfigError becomes one line in `experiments.main`)."""
    check_args(args)
    model = model_from_args(args)
    if args.json:
        print(json.dumps(info_record(model, args.budget, args.mesh, args.batch), indent=2))
    else:
        print(info_text(model, args.budget, args.mesh, args.batch))
    return 0
