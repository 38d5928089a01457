"""The report's convention-sensitivity section: is the fitted exponent a a property of the
models, or of how compute and parameters are counted (Porian et al. 2024)?

Three tables from `convention_fits`: a of Approaches 2 and 3 with intervals under every
(C, N) pair; tokens per parameter at each budget under each pair; and a generated reading:
which choice moves a, by how much, why (the embedding share and the FLOP ratio at the
frontier's two ends), and whether a = 0.5 lies inside any interval.
"""

from __future__ import annotations

import numpy as np

from analysis.convention_fits import BASELINE, C_CHOICES, N_CHOICES, ConventionFit
from analysis.convention_fits import convention_fits as _convention_fits
from analysis.pipeline import Analysis
from analysis.study import embedding_share
from analysis.table_format import Table, fmt, with_ci

CHINCHILLA_A = 0.5
TITLE = "Convention sensitivity"


def _a_cell(fit, reason: str | None) -> str:
    if fit is None:
        return f"- ({reason})" if reason else "-"
    return with_ci(fit.a, fit.ci.get("a"))


def _intervals(r: ConventionFit) -> list[tuple[str, float, list[float] | None]]:
    """(name, a, interval) of the row's three exponents that exist."""
    out = []
    for name, fit in (("Approach 2", r.approach2), ("Approach 3", r.approach3)):
        if fit is not None:
            out.append((name, fit.a, fit.ci.get("a")))
    if r.cost_a is not None:
        out.append(("Approach 3 under this C", *r.cost_a))
    return out


def _contains(ci: list[float] | None, value: float) -> bool | None:
    if not ci or not np.isfinite(ci).all():
        return None
    return bool(ci[0] <= value <= ci[1])


def exponent_table(rows: list[ConventionFit]) -> Table:
    """a of Approaches 2 and 3 (95% CIs) under each (C, N) pair, with the `fit` options."""
    body = []
    for r in rows:
        found = {name: ci for name, _, ci in _intervals(r)}
        inside = [
            {True: "yes", False: "no", None: "-"}[_contains(found.get(name), CHINCHILLA_A)]
            for name in ("Approach 2", "Approach 3", "Approach 3 under this C")
        ]
        body.append(
            [
                C_CHOICES[r.flops],
                N_CHOICES[r.params],
                f"`{r.options}`",
                _a_cell(r.approach2, r.reasons.get("2")),
                _a_cell(r.approach3, r.reasons.get("3")),
                with_ci(*r.cost_a) if r.cost_a is not None else "-",
                " / ".join(inside),
            ]
        )
    return (
        f"{TITLE}: the exponent a under every count of C and N (95% CIs)",
        [
            "C",
            "N",
            "scaling-lab fit options",
            "Approach 2 a",
            "Approach 3 a = beta/(alpha+beta)",
            "Approach 3 a, optimum under this C",
            "0.5 inside (2 / 3 / 3 under C)",
        ],
        body,
    )


def tokens_table(rows: list[ConventionFit], at: tuple[float, ...]) -> Table:
    """D_opt/N_opt (95% CI) at each budget, per approach and (C, N) pair; N as counted."""
    body = []
    for key, name in (("approach2", "Approach 2"), ("approach3", "Approach 3")):
        for r in rows:
            fit = getattr(r, key)
            cells = []
            for C in at:
                if fit is None:
                    cells.append("-")
                    continue
                t = fit.tokens_per_param(C)
                cells.append(with_ci(t["value"], t.get("ci")))
            body.append([name, C_CHOICES[r.flops], N_CHOICES[r.params], *cells])
    return (
        f"{TITLE}: tokens per parameter D/N at each budget (95% CIs; N as counted in the row, "
        "C = the budget in the row's count)",
        ["fit", "C", "N", *[f"C = {fmt(C)}" for C in at]],
        body,
    )


def _by_pair(rows: list[ConventionFit]) -> dict[tuple[str, str], ConventionFit]:
    return {(r.flops, r.params): r for r in rows}


def _ends(fit) -> tuple[float, float, float, float] | None:
    """(C_opt, N_opt) at the smallest and largest frontier budget of an Approach 2 fit."""
    b = fit.budgets.loc[fit.budgets["in_frontier"]].sort_values("budget")
    if len(b) < 2:
        return None
    lo, hi = b.iloc[0], b.iloc[-1]
    return float(lo["C_opt"]), float(hi["C_opt"]), float(lo["N_opt"]), float(hi["N_opt"])


def _why_n(an: Analysis, base: ConventionFit) -> str:
    """The embedding share at the frontier's two ends, from the runs' own N and N_nonemb."""
    raw = an.dataset.raw
    ends = _ends(base.approach2) if base.approach2 is not None else None
    if raw is None or ends is None:
        return ""
    runs = raw.loc[raw["run_id"].astype(str).isin(set(base.dataset.points["run_id"]))]
    c1, c2, n1, n2 = ends
    s1, s2 = embedding_share(runs, n1), embedding_share(runs, n2)
    if not (0 <= s1 < 1 and 0 <= s2 < 1):
        return ""  # N_nonemb not a part of N: nothing to explain with
    shift = np.log((1 - s2) / (1 - s1)) / np.log(c2 / c1)
    return (
        f"embeddings are {100 * s1:.0f}% of N_opt at the smallest frontier budget and "
        f"{100 * s2:.0f}% at the largest, so N_nonemb grows faster than N along the frontier: "
        f"by itself that adds log((1 - {s2:.2f}) / (1 - {s1:.2f})) / log(C ratio) = "
        f"{shift:+.3f} to a"
    )


def _why_c(base: ConventionFit, other: ConventionFit) -> str:
    """How the other count's C at each end's optimum compares with 6 N_total D's."""
    e0 = _ends(base.approach2) if base.approach2 is not None else None
    e1 = _ends(other.approach2) if other.approach2 is not None else None
    if e0 is None or e1 is None:
        return ""
    r1, r2 = e1[0] / e0[0], e1[1] / e0[1]
    span0, span1 = np.log10(e0[1] / e0[0]), np.log10(e1[1] / e1[0])
    return (
        f"{C_CHOICES[other.flops]} is {r1:.3g}x 6 N_total D at the smallest budget's optimum "
        f"and {r2:.3g}x at the largest, so the frontier spans {span1:.3f} decades of C instead "
        f"of {span0:.3f}; the same growth of N_opt over {'fewer' if span1 < span0 else 'more'} "
        f"decades makes a {'larger' if span1 < span0 else 'smaller'}"
    )


def _moves(rows: list[ConventionFit], an: Analysis) -> list[list[str]]:
    """Which single change from Chinchilla's convention moves Approach 2's a, by how much, why."""
    pairs = _by_pair(rows)
    base = pairs[BASELINE]
    if base.approach2 is None:
        return [["which choice moves a", "Approach 2 cannot be fitted under 6 N_total D"]]
    changes = []
    for key, what in (
        (("6N", "nonemb"), "N = non-embedding parameters (C kept at 6 N_total D)"),
        (("6N_nonemb", "total"), "C = 6 N_nonemb D (N kept total)"),
        (("detailed", "total"), "C = the detailed count (N kept total)"),
        (("6N_nonemb", "nonemb"), "both non-embedding (Kaplan et al.'s convention)"),
    ):
        fit = pairs[key].approach2
        if fit is not None:
            changes.append((fit.a - base.approach2.a, what, key))
    if not changes:
        return [["which choice moves a", "no other convention can be fitted"]]
    changes.sort(key=lambda c: -abs(c[0]))
    lines = [
        f"{what}: {d:+.3f} (a = {base.approach2.a:.3f} to {base.approach2.a + d:.3f})"
        for d, what, _ in changes
    ]
    out = [
        [
            "which choice moves Approach 2's a, by how much (from C = 6 N_total D, N = total)",
            "; ".join(lines),
        ]
    ]
    why = [_why_n(an, base)]
    why += [_why_c(base, pairs[k]) for k in (("detailed", "total"), ("6N_nonemb", "total"))]
    why.append(
        "Approach 2 keeps the minima of the sweep's own IsoFLOP lines (constant nominal "
        "budget) and prices them in each count's C; it does not re-optimise along lines of "
        "constant C in that count. Approach 3's optimum under this C does (the same L(N, D) "
        "minimised under the runs' own C(N, D)), so where the two move a in opposite "
        "directions, the difference is that re-optimisation"
    )
    out.append(["why", "; ".join(w for w in why if w) or "-"])
    a3 = {p: pairs[("6N", p)].approach3 for p in N_CHOICES}
    if all(f is not None for f in a3.values()):
        local = [
            f"{r.label}: {r.cost_a[0]:.3f}"
            for r in rows
            if r.cost_a is not None and not r.dataset.conventions.is_6nd
        ]
        out.append(
            [
                "Approach 3",
                "a = beta / (alpha + beta) of L(N, D) is fitted without C, so C does not move "
                f"it; N does: {a3['total'].a:.3f} (total) to {a3['nonemb'].a:.3f} "
                "(non-embedding). That a assumes C = k N D with one k; where the count's FLOPs "
                "per parameter-token k = C / (N D) change with the model, the same L(N, D) "
                "minimised under the runs' own C(N, D) has the local exponents "
                + ("; ".join(local) if local else "(none computed)"),
            ]
        )
    return out


def _half_inside(rows: list[ConventionFit]) -> list[str]:
    """Whether a = 0.5 lies inside any interval, with the intervals as the evidence."""
    inside, outside = [], []
    for r in rows:
        for name, _, ci in _intervals(r):
            if _contains(ci, CHINCHILLA_A) is None:
                continue
            text = f"{name}, {r.label}: [{fmt(ci[0], 3)}, {fmt(ci[1], 3)}]"
            (inside if ci[0] <= CHINCHILLA_A <= ci[1] else outside).append((ci, text))
    if not inside and not outside:
        return [f"a = {CHINCHILLA_A} inside an interval?", "no interval could be computed"]
    if inside:
        verdict = f"yes, in {len(inside)} of {len(inside) + len(outside)} intervals: " + "; ".join(
            t for _, t in inside
        )
        if outside:
            verdict += f". Not in the other {len(outside)}"
        return [f"a = {CHINCHILLA_A} inside an interval?", verdict]
    lowest = min(outside, key=lambda x: x[0][0])
    highest = max(outside, key=lambda x: x[0][1])
    side = (
        "below every interval"
        if lowest[0][0] > CHINCHILLA_A
        else "above every interval"
        if highest[0][1] < CHINCHILLA_A
        else "outside every interval"
    )
    return [
        f"a = {CHINCHILLA_A} inside an interval?",
        f"no: {CHINCHILLA_A} lies {side} (the lowest lower bound is {lowest[1]}; the highest "
        f"upper bound is {highest[1]})",
    ]


def reading_table(rows: list[ConventionFit], an: Analysis) -> Table:
    return (
        f"{TITLE}: what moves a",
        ["question", "answer (from the two tables above)"],
        [*_moves(rows, an), _half_inside(rows)],
    )


def sensitivity_tables(an: Analysis, rows: list[ConventionFit] | None = None) -> list[Table]:
    """The three tables, or none when the table lacks the conventions' columns."""
    rows = _convention_fits(an) if rows is None else rows
    if not rows:
        return []
    return [exponent_table(rows), tokens_table(rows, an.at), reading_table(rows, an)]
