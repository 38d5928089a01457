"""Which planning question the `plan` arguments ask, and its answer as one dict."""

from __future__ import annotations

import argparse

import numpy as np

from analysis.errors import AnalysisError
from analysis.plan_constrained import constrained_placement, constrained_plan
from analysis.plan_inverse import for_loss, for_model_size, for_tokens, place
from analysis.plan_sources import plan_source
from analysis.planner import SCHEMA_VERSION, budget_from, plan


def _decay(text: str | None) -> np.ndarray | None:
    if text is None:
        return None
    try:
        rd, rn = (float(x) for x in text.split(","))
    except ValueError:
        raise AnalysisError(f"--decay takes R_D*,R_N*, e.g. 15.4,5.3; got {text!r}") from None
    if rd <= 0 or rn <= 0:
        raise AnalysisError(f"--decay values must be > 0; got {text!r}")
    return np.array([rd, rn])


def _question(args: argparse.Namespace) -> str:
    budget = any(getattr(args, k) is not None for k in ("budget", "pf_days", "accelerator_hours"))
    asked = {
        "budget": budget,
        "placement": args.model_size is not None and args.tokens is not None,
        "model_size": args.model_size is not None and args.tokens is None,
        "tokens": args.tokens is not None and args.model_size is None,
        "target_loss": args.target_loss is not None,
    }
    chosen = [q for q, on in asked.items() if on]
    if len(chosen) != 1:
        raise AnalysisError(
            "ask one question: a budget (--budget, --pf-days or --accelerator-hours), "
            "--model-size, --tokens, both (to place a model), or --target-loss"
            + (f"; got {' and '.join(chosen)}" if chosen else "")
        )
    q = chosen[0]
    if args.unique_tokens is not None and q not in ("budget", "placement"):
        raise AnalysisError("--unique-tokens goes with a budget or with --model-size and --tokens")
    if args.inference_tokens is not None and q != "budget":
        raise AnalysisError("--inference-tokens goes with a budget")
    if args.decay is not None and args.unique_tokens is None:
        raise AnalysisError("--decay needs --unique-tokens")
    return q


def answer(args: argparse.Namespace) -> dict[str, object]:
    """The answer to the question the arguments ask, with the source and schema version."""
    q = _question(args)
    src = plan_source(args.use, args.fit, getattr(args, "approach", None))
    decay = _decay(args.decay)
    if q == "budget":
        C = budget_from(args.budget, args.pf_days, args.accelerator_hours, args.peak, args.mfu)
        result = plan(C, src, inference_tokens=args.inference_tokens)
        if args.unique_tokens is not None:
            result["data_constrained"] = constrained_plan(C, args.unique_tokens, src, decay)
    elif q == "placement":
        result = place(args.model_size, args.tokens, src)
        if args.unique_tokens is not None:
            result["data_constrained"] = constrained_placement(
                args.model_size, args.tokens, args.unique_tokens, src, decay
            )
    elif q == "model_size":
        result = for_model_size(args.model_size, src)
    elif q == "tokens":
        result = for_tokens(args.tokens, src)
    else:
        result = for_loss(args.target_loss, src)
    return {
        "schema_version": SCHEMA_VERSION,
        **result,
        "fit": src.label,
        "flops_per_param_token": src.flops_per_param_token,
    }
