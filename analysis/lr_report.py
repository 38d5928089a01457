"""The report's hyperparameter section: which LR policy produced the frontier, the tuning runs'
loss-vs-LR curves per size with their fitted parabolas, and the LR_opt(N) law.

Reads the sweep directory's results.csv itself (tuning rows are left out of the fit dataset).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analysis.csv_input import read_table
from analysis.input_paths import input_path
from analysis.lr_tuning import LrTuningError, fit_lr_law, picks_by_size, policy_sentence
from analysis.table_format import Table

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def results_frame(source: str) -> pd.DataFrame | None:
    """The sweep's full results table (tuning rows included), or None for other sources."""
    path = input_path(source)
    csv = path / "results.csv" if path.is_dir() else path
    if not csv.exists() or csv.suffix != ".csv":
        return None
    frame = read_table(csv)
    return frame if "lr_policy" in frame.columns or "tuning" in frame.columns else None


def _tuning_rows(frame: pd.DataFrame) -> pd.DataFrame:
    if "tuning" not in frame.columns:
        return frame.iloc[:0]
    done = frame["status"].astype(str) == "done" if "status" in frame else True
    return frame.loc[frame["tuning"].astype(str).str.lower().eq("true") & done]


def lr_tables(source: str) -> list[Table]:
    """The policy sentence, and per tuned size the picked LR (empty if nothing recorded)."""
    frame = results_frame(source)
    if frame is None:
        return []
    main = frame.loc[~frame.index.isin(_tuning_rows(frame).index)]
    policies = main["lr_policy"].dropna().astype(str).tolist() if "lr_policy" in main else []
    law = None
    if "lr_law" in main and main["lr_law"].notna().any():
        law = json.loads(str(main["lr_law"].dropna().iloc[0]))
    rows = [["policy", policy_sentence(policies, law)]]
    tuning = _tuning_rows(frame)
    if len(tuning):
        picks = picks_by_size(tuning["N"], tuning["peak_lr"], tuning["loss"])
        for n, pick in picks.items():
            note = pick.warning or "parabola in log LR"
            rows.append([f"N = {n:,.0f}", f"LR_opt = {pick.lr:.3g} (loss {pick.loss:.4g}; {note})"])
        tuning_flops = float(tuning["C_6N"].sum()) if "C_6N" in tuning else float("nan")
        study_flops = float(main["C_6N"].sum()) if "C_6N" in main else float("nan")
        rows.append(
            [
                "tuning cost",
                f"{len(tuning)} runs, {tuning_flops:.3g} FLOPs (6N) = "
                f"{tuning_flops / study_flops:.1%} of the study's",
            ]
        )
    return [("Hyperparameters", ["item", "value"], rows)]


def lr_tuning_figure(frame: pd.DataFrame) -> Figure | None:
    """Loss vs LR per size with the fitted parabolas; LR_opt(N) with the power law."""
    from matplotlib import colormaps  # here, so the report's tables load without matplotlib
    from matplotlib.figure import Figure

    from analysis.plots import LOSS_LABEL, plain_log_ticks

    tuning = _tuning_rows(frame)
    if not len(tuning):
        return None
    picks = picks_by_size(tuning["N"], tuning["peak_lr"], tuning["loss"])
    fig = Figure(figsize=(11, 4.2))
    left, right = fig.subplots(1, 2)
    colors = colormaps["viridis"](np.linspace(0, 0.85, len(picks)))
    for color, (n, pick) in zip(colors, picks.items(), strict=True):
        rows = tuning.loc[tuning["N"].astype(float) == n]
        left.scatter(rows["peak_lr"], rows["loss"], color=color, s=18, label=f"N={n:.3g}")
        if pick.coeffs is not None:
            x = np.linspace(np.log(pick.fit_range[0]), np.log(pick.fit_range[1]), 50)
            left.plot(np.exp(x), np.polyval(pick.coeffs, x), color=color)
        left.scatter([pick.lr], [pick.loss], color=color, marker="*", s=90, edgecolor="k")
    left.set(xscale="log", xlabel="peak learning rate", ylabel=LOSS_LABEL)
    plain_log_ticks(left.xaxis)
    left.set_title("LR tuning: loss vs LR per size (star: picked)")
    below = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.16), "frameon": False}
    left.legend(fontsize=8, ncols=min(4, len(picks)), **below)
    sizes = np.array(list(picks))
    lrs = np.array([p.lr for p in picks.values()])
    right.scatter(sizes, lrs, color="k", label="picked LR_opt")
    try:
        law = fit_lr_law(sizes, lrs)
        grid = np.geomspace(sizes.min() / 1.5, sizes.max() * 1.5, 50)
        right.plot(grid, law(grid), color="C3", label=law.describe())
    except LrTuningError:
        pass
    right.set(xscale="log", yscale="log", xlabel="N (parameters)", ylabel="LR_opt")
    plain_log_ticks(right.yaxis)
    right.set_title("fitted LR_opt(N)")
    right.legend(fontsize=8, **below)
    fig.tight_layout()
    return fig


def save_lr_figures(
    source: str, out_dir: Path, formats: tuple[str, ...] = ("png", "svg")
) -> dict[str, list[Path]]:
    """figures/lr_tuning.png|svg when the source holds tuning runs."""
    from analysis.plots import save

    frame = results_frame(source)
    fig = lr_tuning_figure(frame) if frame is not None else None
    return {"lr_tuning": save(fig, out_dir, "lr_tuning", formats)} if fig is not None else {}
