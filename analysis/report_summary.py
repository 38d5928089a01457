"""The report's first section: the answer before the evidence.

The allocation exponents a and b and the tokens per parameter with their intervals, the
held-out check (fit without the largest budget, predict it), and the plan at the largest
budget, each in one line, so a reader who stops after the summary has the result.
"""

from __future__ import annotations

import numpy as np

from analysis import surface
from analysis.approach3 import compute_optimal
from analysis.bootstrap import ci_dict
from analysis.pipeline import Analysis
from analysis.report_tables import HOLDOUT_LOSS_TARGET, HOLDOUT_N_TARGET
from analysis.table_format import Table, fmt, with_ci

NAMES = {"approach3": "Approach 3", "approach2": "Approach 2", "approach1": "Approach 1"}


def _fits(an: Analysis) -> list[tuple[str, object]]:
    return [(NAMES[k], f) for k in NAMES if (f := getattr(an, k)) is not None]


def headline(an: Analysis) -> str:
    """One sentence: what was fitted, on what, and the exponents of the preferred fit."""
    ds = an.dataset
    fits = _fits(an)
    what = f"{len(ds.points)} runs from {ds.source} ({ds.conventions.describe()})"
    if not fits:
        if an.frontier is not None:
            return (
                f"Loss-vs-compute frontier of {what}: L ~ C^{fmt(an.frontier.plain_exponent, 3)}."
            )
        return f"No fit on {what}."
    name, f = fits[0]
    return (
        f"{what}. Compute-optimal allocation ({name}): N_opt ~ C^a with a = "
        f"{with_ci(f.a, f.ci.get('a'))}, D_opt ~ C^b with b = {with_ci(f.b, f.ci.get('b'))} "
        "(95% bootstrap intervals)."
    )


def _plan(an: Analysis) -> str | None:
    """N, D and loss at the largest budget asked for, from Approach 3 (the planner's fit)."""
    f = an.approach3
    if f is None:
        return None
    C = max(an.at)
    n, d = (float(v) for v in f.optimal(C))
    loss = float(f.predict(n, d))
    cis: dict[str, list[float] | None] = {"N": None, "D": None, "loss": None}
    if f.samples is not None and len(f.samples):
        s = f.samples
        ns, dss = compute_optimal(s, np.full(len(s), C))
        cis = ci_dict({"N": ns, "D": dss, "loss": surface.loss(s, ns, dss)})
    return (
        f"at C = {fmt(C, 3)} FLOPs (Approach 3): N = {with_ci(n, cis['N'])} parameters, "
        f"D = {with_ci(d, cis['D'])} tokens, predicted loss {with_ci(loss, cis['loss'])}"
    )


def _holdout(holdout: dict | None, reason: str | None) -> str:
    if not holdout:
        return f"not run: {reason}" if reason else "not run (pass --holdout-largest)"
    m, parts = holdout["measured"], []
    for key, p in holdout["predictions"].items():
        ok = (
            abs(p["loss_rel_error"]) <= HOLDOUT_LOSS_TARGET
            and max(p["N_opt_ratio"], 1 / p["N_opt_ratio"]) <= HOLDOUT_N_TARGET
        )
        parts.append(
            f"{NAMES.get(key, key)} predicts its optimal loss {fmt(p['loss'])} (measured "
            f"{fmt(m['loss'])}, {100 * p['loss_rel_error']:+.1f}%) and N_opt within "
            f"{max(p['N_opt_ratio'], 1 / p['N_opt_ratio']):.2f}x: "
            + ("meets" if ok else "misses")
            + f" the {100 * HOLDOUT_LOSS_TARGET:.0f}% / {HOLDOUT_N_TARGET}x target"
        )
    edge = (
        "; its measured minimum is at the edge of its sizes"
        if holdout.get("measured_at_edge")
        else ""
    )
    return f"fitted without C >= {fmt(holdout['budget'], 3)}: " + "; ".join(parts) + edge


def summary_table(an: Analysis, holdout: dict | None, holdout_reason: str | None = None) -> Table:
    """The summary rows: exponents, tokens per parameter, held-out check, plan, warnings."""
    rows = []
    for name, f in _fits(an):
        rows.append(
            [
                f"{name}: a, b",
                f"a = {with_ci(f.a, f.ci.get('a'))}, b = {with_ci(f.b, f.ci.get('b'))}",
            ]
        )
    for name, f in _fits(an):
        t = f.tokens_per_param(max(an.at))
        rows.append([f"{name}: D/N at C = {fmt(max(an.at), 3)}", with_ci(t["value"], t.get("ci"))])
    if an.frontier is not None:
        fr = an.frontier
        law = f"L ~ C^{with_ci(fr.plain_exponent, fr.ci.get('plain_exponent'))}"
        if fr.saturating is not None:
            s = fr.saturating
            law += f"; L = {fmt(s.E, 3)} + ({fmt(s.C0, 3)}/C)^{fmt(s.gamma, 3)}"
        rows.append(["loss-vs-compute frontier", law])
    if an.approach3 is not None or holdout or holdout_reason:
        rows.append(["held-out check", _holdout(holdout, holdout_reason)])
    plan = _plan(an)
    if plan:
        rows.append(["plan at the largest budget", plan])
    if an.warnings:
        rows.append(["warnings", f"{len(an.warnings)}, listed under Warnings below"])
    return ("Summary", ["", "result"], rows)
