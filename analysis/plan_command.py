"""`scaling-lab plan`: the planning questions answered from an L(N, D) surface.

The parser and handler of the command; the answers are `analysis.plan_answer`'s, the text
`analysis.plan_text`'s. Registered by `analysis.cli`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RAW = argparse.RawDescriptionHelpFormatter

PLAN_HELP = """\
Answer the planning questions from an L(N, D) surface (a `fit --json` file or a published
fit), with intervals when the fit carries bootstrap samples, and say how many decades of
compute beyond the fit's data each answer lies (a warning past 2):
  a budget (--budget FLOPs | --pf-days | --accelerator-hours x --peak x --mfu): the
    compute-optimal N, D, tokens/param and loss;
  --model-size N: the tokens and budget at which N is compute-optimal;
  --tokens D: the model size and budget for which D is compute-optimal;
  --model-size N --tokens D: that model placed against the frontier (its loss, the
    optimum's at the same budget, and the share of the compute the optimum needs);
  --target-loss L: the cheapest budget that reaches L.
--unique-tokens U (with a budget, or with --model-size and --tokens) plans for a data pool
of U unique tokens (Muennighoff et al. 2023): the best N and number of epochs, and the loss
cost against unlimited data, with their R_D* = 15.4, R_N* = 5.3 unless the source has its
own (--use muennighoff) or --decay says otherwise. --inference-tokens T minimises training
+ inference FLOPs (6ND + 2NT) at the same loss (Sardana et al. 2024). 1 PF-day = 8.64e19
FLOPs. Sources: --use besiroglu (default), hoffmann (Approach 3 as published), hoffmann-a1,
hoffmann-a2 (allocation laws: no loss), muennighoff; or --fit FILE (Approach 3, else 2)."""

PLAN_EPILOG = """\
examples:
  scaling-lab plan --budget 1e22
  scaling-lab plan --pf-days 100 --use hoffmann-a2
  scaling-lab plan --accelerator-hours 5000 --peak 989e12 --mfu 0.4 --fit fit.json
  scaling-lab plan --budget 5.88e23 --inference-tokens 2e12 --json
  scaling-lab plan --target-loss 2.0
  scaling-lab plan --model-size 7e9

BloombergGPT (Wu et al. 2023: 50.6B parameters, 569B tokens, ~2.4e23 FLOPs), Besiroglu fit:
  scaling-lab plan --model-size 50.6e9 --tokens 569e9 --unique-tokens 569e9
    6ND = 1.73e23 FLOPs at 11.2 tokens/param; the optimum there is 39.0B params on 739B
    tokens (19.0 tokens/param), loss 2.0121 vs 2.0129: the optimum matches BloombergGPT's
    loss with 97.6% of its compute. On a 569B-token pool the data-constrained optimum is
    37.6B params for 1.35 epochs (loss 2.0124 vs 2.0138 for BloombergGPT there).
  scaling-lab plan --budget 2.4e23 --unique-tokens 569e9
    unlimited data: 46.1B params on 867B tokens (18.8/param), loss 2.0010; with 569B
    unique tokens: 43.6B params for 1.61 epochs (918B tokens), loss 2.0017 (+0.0007).

exit codes: 0 answered; 2 a bad question or source (one line naming the problem)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    plan = subparsers.add_parser(
        "plan",
        help="compute-optimal N and D for a budget, a size, a token count or a target loss",
        description=PLAN_HELP,
        epilog=PLAN_EPILOG,
        formatter_class=RAW,
    )
    _plan_args(plan)
    plan.set_defaults(func=plan_command)


def _plan_args(plan: argparse.ArgumentParser) -> None:
    plan.add_argument("--budget", type=float, help="budget in FLOPs")
    plan.add_argument("--pf-days", type=float, help="budget in PF-days")
    plan.add_argument(
        "--accelerator-hours", type=float, help="accelerator-hours (with --peak, --mfu)"
    )
    plan.add_argument(
        "--peak", type=float, help="peak FLOP/s of one accelerator (e.g. 989e12, H100 bf16 dense)"
    )
    plan.add_argument("--mfu", type=float, help="model FLOPs utilisation, 0..1")
    plan.add_argument("--model-size", type=float, metavar="N", help="a fixed parameter count")
    plan.add_argument("--tokens", type=float, metavar="D", help="a fixed training token count")
    plan.add_argument("--target-loss", type=float, metavar="L", help="the loss to reach")
    plan.add_argument(
        "--unique-tokens", type=float, metavar="U", help="unique tokens available (repeats allowed)"
    )
    plan.add_argument(
        "--decay",
        metavar="RD,RN",
        help="R_D*,R_N* for --unique-tokens (default: the source's, else 15.39,5.31)",
    )
    src = plan.add_mutually_exclusive_group()
    src.add_argument(
        "--use",
        choices=["besiroglu", "hoffmann", "hoffmann-a1", "hoffmann-a2", "muennighoff"],
        help="a published fit (default besiroglu)",
    )
    src.add_argument("--fit", type=Path, metavar="FILE", help="the JSON written by `fit --json`")
    plan.add_argument(
        "--approach", choices=["2", "3"], help="which fit of --fit FILE (default 3, else 2)"
    )
    plan.add_argument(
        "--inference-tokens",
        type=float,
        metavar="T",
        help="expected inference tokens (Sardana et al. 2024)",
    )
    plan.add_argument("--json", action="store_true", help="print JSON")


def plan_command(args: argparse.Namespace) -> int:
    """One planning question -> its answer as text or JSON (with schema_version)."""
    from analysis.pipeline import clean
    from analysis.plan_answer import answer

    result = clean(answer(args))
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        from analysis.plan_text import render

        print(render(result))
    return 0
