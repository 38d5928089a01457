"""`scaling-lab fit | report | plan`: the analysis side of the console script.

`experiments.main` calls `register(subparsers)`; nothing here imports JAX, so these commands
run on a laptop with only numpy, scipy, pandas and matplotlib.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from analysis import plan_command
from analysis.conventions import FLOP_CONVENTIONS, PARAM_CONVENTIONS, Conventions
from analysis.errors import AnalysisError
from analysis.examples import EXAMPLES

RAW = argparse.RawDescriptionHelpFormatter

FIT_HELP = """\
Fit scaling laws to a results table and print them.

SOURCE is a sweep directory (results.csv, and curves.csv for Approach 1; checked against its
tables.json manifest when there is one) or any CSV, comma-, tab-, semicolon- or
pipe-separated, with columns for N, D and/or C, and loss (matched case-insensitively; aliases
such as params, tokens, flops, "Model Size", "Training FLOP" work; the output says which
column it took). D is derived from C = 6ND when absent; with C and loss alone, only the
loss-vs-compute frontier is fitted. Rows with a missing, infinite or non-positive value are
dropped and counted by reason in the warnings.
Fits: the loss-vs-compute frontier; Approach 1 (envelope of training curves); Approach 2
(IsoFLOP parabolas); Approach 3 (L(N,D) = E + A/N^alpha + B/D^beta, Huber on log
residuals); Kaplan-style L(N), L(D). Every interval is a seeded percentile bootstrap over
runs. The parameter and FLOP conventions are explicit and appear in every output."""

FIT_EPILOG = """\
examples:
  scaling-lab fit --example chinchilla --approach 3
  scaling-lab fit runs/demo --json --at 1e21,5.88e23 > fit.json
  scaling-lab fit --example misfitting --approach 1 --params nonemb
  scaling-lab fit my.csv --n "Model Size" --c "Training FLOP" --loss loss
  scaling-lab fit runs/demo --holdout-largest
  scaling-lab fit runs.tsv --n params_M --n-scale 1e6     # N given in millions

exit codes:
  0    the fits ran; with --approach all, a fit the data cannot support is listed as
       skipped (with the reason) in the warnings
  2    bad input (empty or torn file, missing or mis-scaled column, bad option), or the
       approach asked for with --approach 1|2|3 cannot be fitted on this data (the
       message says why), or no fit at all can run; nothing is printed on stdout"""

REPORT_HELP = """\
Write a report of every fit: one self-contained HTML page (figures embedded) and a
Markdown file. It opens with a summary (a, b and tokens per parameter with intervals, the
held-out check, the plan at the largest budget) and a table of contents; each section's
table is followed by its figures, captioned with what to look for; then warnings and
provenance. Each figure is also written as PNG and SVG under REPORT_DIR/figures. Exit
codes as for fit."""

REPORT_EPILOG = """\
examples:
  scaling-lab report runs/demo --out runs/demo/report
  scaling-lab report --example chinchilla --out /tmp/chinchilla-report"""


def _source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", help="sweep directory or CSV file")
    p.add_argument(
        "--example", choices=sorted(EXAMPLES), help="use a shipped data set instead of SOURCE"
    )
    p.add_argument(
        "--params",
        choices=PARAM_CONVENTIONS,
        default="total",
        help="parameter convention (default total)",
    )
    p.add_argument(
        "--flops",
        choices=FLOP_CONVENTIONS,
        default="6ND",
        help="FLOP convention: 6ND (6 N D with the --params N; default), 6N (6 N_total D), "
        "6N_nonemb (6 N_nonemb D) or detailed (attention included)",
    )
    for col in ("n", "d", "c", "loss", "budget"):
        p.add_argument(
            f"--{col}",
            dest=f"col_{col}",
            metavar="COLUMN",
            help=f"column holding {col.upper() if col in 'ndc' else col}",
        )
    for col, unit in (("n", "parameters"), ("d", "tokens")):
        p.add_argument(
            f"--{col}-scale",
            type=_positive,
            default=1.0,
            metavar="FACTOR",
            help=f"multiply the {col.upper()} column by FACTOR ({unit} given in millions: 1e6)",
        )
    p.add_argument(
        "--run-cols", help="comma-separated columns that together identify a run (curves)"
    )
    p.add_argument(
        "--include-tuning", action="store_true", help="keep LR-tuning runs (tuning=true)"
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="R",
        help="resamples for Approaches 1 and 2 (default 1000); the loss-vs-compute frontier "
        "uses min(R, 200), its saturating-law gamma min(R, 100)",
    )
    p.add_argument(
        "--bootstrap-a3",
        type=int,
        default=4000,
        metavar="R",
        help="resamples for Approach 3 (default 4000)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument(
        "--k-nearest",
        type=int,
        metavar="K",
        help="Approach 2: fit each parabola to the K sizes nearest its minimum",
    )
    p.add_argument(
        "--include-edge",
        action="store_true",
        help="Approach 2: keep minima at the edge in the frontier fit",
    )
    p.add_argument(
        "--at",
        help="budgets for tokens/param (default: a sweep's own budgets, else 1e21,5.88e23)",
    )
    p.add_argument(
        "--holdout-largest",
        action="store_true",
        help="hold out the largest budget with 3+ sizes (and all larger ones), fit the rest, "
        "predict it, compare",
    )
    p.add_argument(
        "--drop-highest",
        type=int,
        metavar="K",
        help="leave out the K runs with the highest final loss, recorded in the output "
        "(Besiroglu et al. 2024 dropped 5 Chinchilla runs; for --example chinchilla K replaces "
        "its default 5)",
    )


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number (e.g. 1e6)")
    return value


def run(argv: list[str]) -> int:
    """Run one analysis command (`fit`, `report`, `plan`) from its arguments, for callers
    inside the project (the demo); an `AnalysisError` propagates to the caller."""
    parser = argparse.ArgumentParser(prog="scaling-lab")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add fit, report and plan to the `scaling-lab` dispatcher."""
    fit = subparsers.add_parser(
        "fit",
        help="fit scaling laws to a results table",
        description=FIT_HELP,
        epilog=FIT_EPILOG,
        formatter_class=RAW,
    )
    _source_args(fit)
    fit.add_argument(
        "--approach", choices=["1", "2", "3", "all"], default="all", help="which fits (default all)"
    )
    fit.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document (one object per approach; its schema_version says "
        "which layout)",
    )
    fit.add_argument(
        "-o",
        "--output",
        type=Path,
        help="also write the JSON document to this file (for plan --fit)",
    )
    fit.set_defaults(func=fit_command)
    rep = subparsers.add_parser(
        "report",
        help="HTML + Markdown report with plots",
        description=REPORT_HELP,
        epilog=REPORT_EPILOG,
        formatter_class=RAW,
    )
    _source_args(rep)
    rep.add_argument(
        "--out", required=True, metavar="REPORT_DIR", help="output directory (local or gs://)"
    )
    rep.add_argument(
        "--markdown-only",
        action="store_true",
        help="report.md and PNG figures only (no HTML, no SVG): small enough to commit to docs/",
    )
    rep.set_defaults(func=report_command)
    plan_command.register(subparsers)


def _load(args: argparse.Namespace):
    from analysis.sources import load

    conv = Conventions(args.params, args.flops)
    if args.example:
        return load(f"example:{args.example}", conv, drop_highest_k=args.drop_highest)
    if not args.source:
        raise AnalysisError("give SOURCE (a sweep directory or CSV) or --example NAME")
    mapping = {
        k.upper() if k in "ndc" else k: v
        for k in ("n", "d", "c", "loss", "budget")
        if (v := getattr(args, f"col_{k}"))
    }
    run_cols = args.run_cols.split(",") if args.run_cols else None
    scales = {"N": args.n_scale, "D": args.d_scale}
    return load(
        args.source, conv, mapping, run_cols, args.include_tuning, args.drop_highest, scales
    )


def _analyse(args: argparse.Namespace, approaches: tuple[str, ...], strict: bool = False):
    from analysis.holdout import holdout_largest
    from analysis.pipeline import run_fits

    try:
        at = tuple(float(x) for x in args.at.split(",") if x.strip()) if args.at else None
    except ValueError as e:
        raise AnalysisError(
            f"--at takes comma-separated FLOP budgets, e.g. 1e21,5.88e23 ({e})"
        ) from e
    ds = _load(args)
    an = run_fits(
        ds,
        approaches,
        args.bootstrap,
        args.bootstrap_a3,
        args.seed,
        args.k_nearest,
        args.include_edge,
        at,
        strict,
    )
    hold = holdout_largest(ds.points, args.k_nearest, _flops(ds)) if args.holdout_largest else None
    return an, hold


def _flops(ds) -> str:
    """The holdout's FLOP convention: "6ND" when C = 6 N D with the data's N."""
    return "6ND" if ds.conventions.is_6nd else ds.conventions.c_flops


def _print_tables(tabs) -> None:
    for title, header, rows in tabs:
        rows = [[str(c).replace("\n", "\\n") for c in r] for r in rows]  # sample texts
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
        print(f"\n{title}")
        print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for r in rows:
            print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))


def fit_command(args: argparse.Namespace) -> int:
    """Fit, then print tables or one JSON document."""
    from analysis.pipeline import clean, fit_document
    from analysis.report_tables import tables

    approaches = ("1", "2", "3") if args.approach == "all" else (args.approach,)
    an, hold = _analyse(args, approaches, strict=args.approach != "all")
    doc = fit_document(an)
    if hold is not None:
        doc["holdout_largest"] = clean(hold)
    if args.output:
        args.output.write_text(json.dumps(doc, indent=1))
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        _print_tables(tables(an, hold))
    return 0


def report_command(args: argparse.Namespace) -> int:
    """Fit everything and write report.html, report.md and figures."""
    from analysis.errors import FitError
    from analysis.holdout import holdout_largest
    from analysis.output_paths import report_dir
    from analysis.report import write_report

    an, hold = _analyse(args, ("1", "2", "3"))
    reason = None
    if hold is None and an.dataset.has_sizes:  # the summary's held-out check, when possible
        try:
            hold = holdout_largest(an.dataset.points, args.k_nearest, _flops(an.dataset))
        except FitError as e:
            reason = str(e)
    with report_dir(args.out) as out:
        paths = write_report(an, out, hold, args.markdown_only, reason)
    where = {k: str(v).replace(str(out), args.out.rstrip("/"), 1) for k, v in paths.items()}
    pages = " and ".join(where[k] for k in ("html", "markdown") if k in where)
    print(f"wrote {pages} (figures in {where['figures']})")
    return 0
