"""The report's tables, as (title, header, rows): shared by `fit` (printed), report.md and
report.html, so the three never disagree. No matplotlib here: `fit` stays quick to start.
"""

from __future__ import annotations

from datetime import UTC, datetime

from analysis.loading import SAMPLE_ROLES
from analysis.lr_report import lr_tables
from analysis.pipeline import Analysis
from analysis.reference import TOKENS_PER_PARAM_RULE, get_reference
from analysis.sensitivity import sensitivity_tables
from analysis.study import study_tables
from analysis.table_format import Table, ci_text, fmt, has_ci

HOLDOUT_LOSS_TARGET = 0.02  # a held-out budget's optimal loss predicted within 2%
HOLDOUT_N_TARGET = 1.5  # and its N_opt within a factor of 1.5


def samples_table(samples: list[dict]) -> Table:
    """Per budget, what the smallest, the compute-optimal and the largest model wrote."""
    order = {role: i for i, role in enumerate(SAMPLE_ROLES)}

    def num(x: object) -> float | None:
        return float(x) if isinstance(x, int | float) else None

    rows = [
        [
            fmt(num(s["budget"])),
            str(s["role"]),
            str(s["run_id"]),
            fmt(num(s["N"])),
            fmt(num(s["D"])),
            fmt(num(s["loss"])),
            str(s["prompt"]),
            str(s["completion"]),
        ]
        for s in sorted(samples, key=lambda s: (num(s["budget"]) or 0.0, order[s["role"]]))
    ]
    return (
        "Samples",
        ["budget C", "role", "run", "N", "D", "loss", "prompt", "completion"],
        rows,
    )


def tables(an: Analysis, holdout: dict | None = None, sensitivity: bool = False) -> list[Table]:
    """(title, header, rows) for every section the data allow; `sensitivity` adds the
    convention-sensitivity section (the report's: 6 refits, too slow for every `fit`)."""
    ds, out = an.dataset, []
    pts = ds.points
    out.append(
        (
            "Data and conventions",
            ["item", "value"],
            [
                ["source", ds.source],
                ["conventions", ds.conventions.describe()],
                ["runs", str(len(pts))],
                ["N range", f"{fmt(pts['N'].min())} .. {fmt(pts['N'].max())}"],
                ["D range", f"{fmt(pts['D'].min())} .. {fmt(pts['D'].max())}"],
                ["C range", f"{fmt(pts['C'].min())} .. {fmt(pts['C'].max())}"],
                ["training curves", "yes" if ds.curves is not None else "no"],
                *[[f"{k} read from", v] for k, v in ds.columns.items()],
                *[["note", n] for n in ds.notes],
            ],
        )
    )
    if an.approach3 is not None:
        f, hof, bes = an.approach3, get_reference("hoffmann"), get_reference("besiroglu")
        rows = [
            [k, fmt(f.params[k]), ci_text(f.ci.get(k)), fmt(hof[k]), fmt(bes[k])]
            for k in ("E", "A", "B", "alpha", "beta")
        ]
        rows += [
            [
                "a",
                fmt(f.a),
                ci_text(f.ci.get("a")),
                fmt(hof["beta"] / (hof["alpha"] + hof["beta"])),
                fmt(bes["beta"] / (bes["alpha"] + bes["beta"])),
            ],
            [
                "b",
                fmt(f.b),
                ci_text(f.ci.get("b")),
                fmt(hof["alpha"] / (hof["alpha"] + hof["beta"])),
                fmt(bes["alpha"] / (bes["alpha"] + bes["beta"])),
            ],
        ]
        if an.approach3_cost is not None:  # C is not k N D with one k: its own optimum
            cost = an.approach3_cost
            rows.append(["a under this C (local)", fmt(cost.a), ci_text(cost.ci), "", ""])
        out.append(
            (
                "Approach 3: L(N, D) = E + A/N^alpha + B/D^beta",
                ["parameter", "lab", "95% CI", "Hoffmann 2022", "Besiroglu 2024"],
                rows,
            )
        )
    for name, fit, ref in (
        ("Approach 1 (envelope)", an.approach1, "hoffmann2022_approach1"),
        ("Approach 2 (IsoFLOP)", an.approach2, "hoffmann2022_approach2"),
    ):
        if fit is not None:
            r = get_reference(ref)
            out.append(
                (
                    f"{name}: N_opt ~ C^a, D_opt ~ C^b",
                    ["exponent", "lab", "95% CI", "Hoffmann 2022"],
                    [
                        ["a", fmt(fit.a), ci_text(fit.ci.get("a")), fmt(r["a"])],
                        ["b", fmt(fit.b), ci_text(fit.ci.get("b")), fmt(r["b"])],
                    ],
                )
            )
    if an.approach2 is not None:
        rows = [
            [
                fmt(r.budget),
                fmt(r.C_opt),
                str(r.n_runs),
                fmt(r.N_opt),
                ci_text(r.N_opt_ci),
                fmt(r.D_opt),
                fmt(r.loss_opt),
                "edge" if r.edge else "ok",
            ]
            for r in an.approach2.budgets.itertuples()
        ]
        out.append(
            (
                "IsoFLOP minima per budget",
                [
                    "budget C",
                    "C at N_opt",
                    "runs",
                    "N_opt",
                    "N_opt 95% CI",
                    "D_opt",
                    "loss",
                    "minimum",
                ],
                rows,
            )
        )
    rows = []
    for label, fit in (
        ("Approach 1", an.approach1),
        ("Approach 2", an.approach2),
        ("Approach 3", an.approach3),
    ):
        for C in an.at if fit is not None else ():
            t = fit.tokens_per_param(C)
            ci = t.get("ci")
            inside = (
                "-"
                if not has_ci(ci)
                else ("yes" if ci[0] <= TOKENS_PER_PARAM_RULE <= ci[1] else "no")
            )
            rows.append([label, fmt(C), fmt(t["value"]), ci_text(ci), inside])
    if rows:
        out.append(
            (
                "Tokens per parameter at the compute-optimal allocation",
                ["fit", "C", "D/N", "95% CI", "20 inside CI?"],
                rows,
            )
        )
    if an.frontier is not None:
        fr = an.frontier
        rows = [
            [
                "plain: L = k C^p",
                f"p = {fmt(fr.plain_exponent)}",
                ci_text(fr.ci.get("plain_exponent")),
            ]
        ]
        if fr.saturating is not None:
            s = fr.saturating
            rows.append(
                [
                    "L = E + (C0/C)^gamma",
                    f"E = {fmt(s.E)}, C0 = {fmt(s.C0)}, gamma = {fmt(s.gamma)}",
                    ci_text(fr.ci.get("gamma")),
                ]
            )
        out.append(("Loss-vs-compute frontier", ["form", "fit", "95% CI (exponent)"], rows))
    kap = get_reference("kaplan")
    rows = [
        [
            f"L({v})",
            fmt(k.alpha) if k.supported else "not fitted",
            fmt(k.X_c) if k.supported else "-",
            fmt(kap["alpha_N" if v == "N" else "alpha_D"]),
            k.reason,
        ]
        for v, k in an.kaplan.items()
    ]
    if rows:
        out.append(
            (
                "Kaplan-style power laws L(X) = (X_c/X)^alpha_X",
                ["law", "alpha", "X_c", "Kaplan 2020 alpha", "note"],
                rows,
            )
        )
    if holdout:
        m = holdout["measured"]
        rows = [
            [
                k,
                fmt(p["N_opt"]),
                fmt(m["N_opt"]),
                fmt(p["N_opt_ratio"]),
                fmt(p["loss"]),
                fmt(m["loss"]),
                f"{100 * p['loss_rel_error']:+.2f}%",
                "yes"
                if abs(p["loss_rel_error"]) <= HOLDOUT_LOSS_TARGET
                and max(p["N_opt_ratio"], 1 / p["N_opt_ratio"]) <= HOLDOUT_N_TARGET
                else "no",
            ]
            for k, p in holdout["predictions"].items()
        ]
        out.append(
            (
                f"Held-out largest budget with 3+ sizes: C = {fmt(holdout['budget'])} "
                f"({holdout['held_out_runs']} runs at C >= {fmt(holdout['budget'])} held out, "
                f"{len(holdout['held_out_budgets'])} budget(s))"
                + (
                    "; its measured minimum is at the edge of its sizes"
                    if holdout.get("measured_at_edge")
                    else ""
                ),
                [
                    "fit",
                    "N_opt predicted",
                    "measured",
                    "ratio",
                    "loss predicted",
                    "measured",
                    "error",
                    f"within {100 * HOLDOUT_LOSS_TARGET:.0f}% and {HOLDOUT_N_TARGET}x?",
                ],
                rows,
            )
        )
    out.extend(study_tables(an))  # both conventions, E vs true entropy, cost and MFU
    if sensitivity:
        out.extend(sensitivity_tables(an))  # a under every count of C and N
    if ds.samples:
        out.append(samples_table(ds.samples))
    out.extend(lr_tables(ds.source))  # which LR policy produced the frontier (+ tuning)
    if an.warnings:
        out.append(("Warnings", ["warning"], [[w] for w in an.warnings]))
    prov = [[k, ", ".join(v)] for k, v in ds.provenance.items()]
    prov.append(["generated", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")])
    out.append(("Provenance", ["field", "values"], prov))
    return out
