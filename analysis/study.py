"""What a scaling study must state beyond its fits, when the results table allows it.

- Tokens per parameter under both parameter conventions: Chinchilla's ~20 counts total
  parameters; in the tiny models a CPU can train, embeddings are a large share of them, so the
  same optimum reads very differently in the two conventions (Kaplan counted non-embedding).
- The fitted irreducible loss E against a corpus's known entropy rate (the synthetic corpus):
  the one ground truth a scaling fit on real training runs can be checked against.
- What the sweep cost: job time, the share spent in training steps, and model FLOPs
  utilisation per model size.

Each function returns a report table, or None when the data lack what it needs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.approach2 import fit_approach2
from analysis.columns import as_bool
from analysis.conventions import Conventions
from analysis.errors import AnalysisError, FitError
from analysis.loading import from_frame
from analysis.pipeline import Analysis
from analysis.table_format import Table, fmt, with_ci

ENTROPY_TOLERANCE = 0.05  # the study's target: fitted E within 5% of the true entropy
# CPU peaks read on a busy host come out up to ~2x low; a wider spread means runs measured
# different setups (thread counts, devices), which no single denominator describes.
SAME_SETUP_PEAK_SPREAD = 2.0


def _finished_runs(an: Analysis) -> pd.DataFrame | None:
    """The rows of the fitted runs in the source table (every column), or None."""
    raw = an.dataset.raw
    if raw is None or "run_id" not in raw:
        return None
    return raw.loc[raw["run_id"].astype(str).isin(set(an.dataset.points["run_id"].astype(str)))]


def embedding_share(runs: pd.DataFrame, N: float) -> float:
    """1 - N_nonemb / N at total size N, interpolated in log N between the runs' sizes."""
    sizes = runs.groupby("N")["N_nonemb"].first().sort_index()
    share = 1.0 - sizes.to_numpy(dtype=float) / sizes.index.to_numpy(dtype=float)
    return float(np.interp(np.log(N), np.log(sizes.index.to_numpy(dtype=float)), share))


def conventions_table(an: Analysis) -> Table | None:
    """Approach 2 in both conventions at each budget: D/N, D/N_nonemb and the embedding share.

    Both refits group runs by the sweep's nominal budget (its `budget` column) and count C
    the same way (the refit keeps the fit's FLOP count, e.g. 6 N_total D, while N changes),
    so each row describes one compute-optimal allocation counted two ways.
    """
    runs = _finished_runs(an)
    ds = an.dataset
    if runs is None or "N_nonemb" not in runs or not ds.has_budgets or an.approach2 is None:
        return None
    other = "nonemb" if ds.conventions.params == "total" else "total"
    opts = an.options
    try:
        alt = from_frame(runs, Conventions(other, ds.conventions.c_flops), source=ds.source)
        alt_fit = fit_approach2(
            alt.points,
            n_boot=int(opts.get("n_boot", 1000)),
            seed=int(opts.get("seed", 0)),
            k_nearest=opts.get("k_nearest"),  # type: ignore[arg-type]
            include_edge=bool(opts.get("include_edge", False)),
        )
    except (AnalysisError, FitError):
        return None
    fits = {ds.conventions.params: an.approach2, other: alt_fit}
    rows = []
    for C in an.at:
        total, nonemb = fits["total"].tokens_per_param(C), fits["nonemb"].tokens_per_param(C)
        n_opt = float(fits["total"].n_opt(C))
        rows.append(
            [
                fmt(C),
                fmt(n_opt, 3),
                with_ci(total["value"], total.get("ci")),
                fmt(float(fits["nonemb"].n_opt(C)), 3),
                with_ci(nonemb["value"], nonemb.get("ci")),
                f"{100 * embedding_share(runs, n_opt):.0f}%",
            ]
        )
    for name, fit in (("total", fits["total"]), ("non-embedding", fits["nonemb"])):
        rows.append(
            [
                f"a, b ({name})",
                with_ci(fit.a, fit.ci.get("a")),
                with_ci(fit.b, fit.ci.get("b")),
                "",
                "",
                "",
            ]
        )
    return (
        "Tokens per parameter in both conventions (Approach 2; 95% CIs; Chinchilla: ~20 per "
        "total parameter)",
        ["budget C", "N_opt", "D/N", "N_opt non-emb.", "D/N_nonemb", "embedding share at N_opt"],
        rows,
    )


def entropy_table(an: Analysis) -> Table | None:
    """Fitted irreducible losses against the corpus's true entropy rate, when it is known."""
    runs = _finished_runs(an)
    if runs is None or "true_entropy" not in runs:
        return None
    values = pd.to_numeric(runs["true_entropy"], errors="coerce").dropna().unique()
    if values.size != 1:
        return None  # unknown (a natural corpus) or mixed corpora: nothing to compare with
    H = float(values[0])
    rows = []

    def row(label: str, E: float, ci: list[float] | None) -> list[str]:
        rel = (E - H) / H
        verdict = "yes" if abs(rel) <= ENTROPY_TOLERANCE else "no"
        return [label, with_ci(E, ci, 4), fmt(H), f"{100 * rel:+.2f}%", verdict]

    if an.approach3 is not None:
        f = an.approach3
        rows.append(row("Approach 3: E of L(N, D)", f.params["E"], f.ci.get("E")))
    if an.frontier is not None and an.frontier.saturating is not None:
        rows.append(row("frontier: E of L(C)", an.frontier.saturating.E, an.frontier.ci.get("E")))
    best = float(an.dataset.points["loss"].min())
    lowest = "lowest measured loss (an upper bound on E)"
    rows.append([lowest, fmt(best), fmt(H), f"{100 * (best - H) / H:+.2f}%", "-"])
    return (
        f"Irreducible loss vs the corpus's true entropy rate (target: within "
        f"{100 * ENTROPY_TOLERANCE:.0f}%)",
        ["estimate", "E (95% CI)", "true entropy", "difference", "within target?"],
        rows,
    )


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(np.nan, df.index)


def _time_weighted(mfu: pd.Series, seconds: pd.Series) -> float | None:
    """Mean MFU weighted by training time: all model FLOPs over all step time x peak."""
    ok = mfu.notna() & seconds.notna() & (seconds > 0)
    return float(np.average(mfu[ok], weights=seconds[ok])) if ok.any() else None


def cost_tables(an: Analysis) -> list[Table]:
    """Job time, the share in training steps and MFU, from every finished run of the source
    (LR-tuning runs included: they are part of what the study cost)."""
    raw = an.dataset.raw
    if raw is None or "wall_time_s" not in raw or "status" not in raw:
        return []
    done = raw.loc[raw["status"].astype(str) == "done"]
    wall, train, mfu = _num(done, "wall_time_s"), _num(done, "train_time_s"), _num(done, "mfu")
    if not wall.notna().any():
        return []
    flops = _num(done, "C_detailed")
    peak_col = _num(done, "peak_flops")
    achieved = mfu * peak_col / 1e9  # steady-state GFLOP/s of one job: no denominator needed
    best_peak = float(peak_col.max()) if peak_col.notna().all() else None
    if best_peak is not None and best_peak <= SAME_SETUP_PEAK_SPREAD * float(peak_col.min()):
        mfu = mfu * peak_col / best_peak  # one denominator: the best reading of one setup
    else:
        best_peak = None  # thread counts differ (or peaks unknown): each run's own peak
    tuning = as_bool(done["tuning"]) if "tuning" in done else pd.Series(False, done.index)
    everything = pd.Series(True, done.index)
    rows = []
    for label, m in (("main runs", ~tuning), ("LR-tuning runs", tuning), ("all", everything)):
        if not m.any():
            continue
        w, t = wall[m].sum(), train[m].sum()
        rows.append(
            [
                label,
                str(int(m.sum())),
                fmt(flops[m].sum(), 3),
                f"{w / 60:.1f}",
                f"{100 * t / w:.0f}%" if w > 0 else "-",
                fmt(_time_weighted(achieved[m], train[m]), 3),
                fmt(_time_weighted(mfu[m], train[m]), 3),
            ]
        )
    summary: Table = (
        "Cost of the study (summed over runs; with J parallel jobs the wall time is ~1/J of it)",
        [
            "runs",
            "count",
            "FLOPs (with attention)",
            "job minutes",
            "in training steps",
            "GFLOP/s per job",
            "MFU",
        ],
        rows,
    )
    by_size = done.assign(mfu=mfu, achieved=achieved).groupby(pd.to_numeric(done["N"]))
    size_rows = [
        [
            fmt(float(N), 3),
            str(len(g)),
            fmt(g["achieved"].median(), 3),
            fmt(g["mfu"].median(), 3),
            fmt(g["mfu"].max(), 3),
        ]
        for N, g in by_size
    ]
    peak = (
        f"the best matmul peak any run measured, {best_peak / 1e9:.4g} GFLOP/s"
        if best_peak
        else "each run's own measured peak"
    )
    per_size: Table = (
        f"MFU by model size (median step's model FLOPs / (step time x {peak}), all runs)",
        ["N", "runs", "median GFLOP/s per job", "median MFU", "best MFU"],
        size_rows,
    )
    return [summary, per_size]


def study_tables(an: Analysis) -> list[Table]:
    """Every study section the data support, in report order."""
    out = [t for t in (conventions_table(an), entropy_table(an)) if t is not None]
    return out + cost_tables(an)
