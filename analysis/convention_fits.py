"""Approaches 2 and 3 refitted under every combination of the FLOP count C and the parameter
count N that a sweep records, for the report's convention-sensitivity section.

C: 6 N_total D (`--flops 6N`), 6 N_nonemb D (`--flops 6N_nonemb`), the detailed causal count
(`--flops detailed`); N: total or non-embedding (`--params`). Each refit loads the fitted
runs' own table under that pair, exactly as `scaling-lab fit --flops C --params N` does, with
the report's bootstrap sizes and seed, so every entry can be reproduced by hand.

Approach 3 fits L(N, D) without C, so its fit depends on N alone: it is fitted once per N and
shared by the three C (C sets only its FLOPs per parameter-token k, `surface`), which is
what `fit` computes, at a third of the cost.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.approach2 import Approach2Fit, fit_approach2
from analysis.approach3 import Approach3Fit, fit_approach3
from analysis.columns import as_bool, find_column
from analysis.conventions import Conventions
from analysis.cost_optimum import CostOptimum, cost_optimum
from analysis.errors import AnalysisError, FitError
from analysis.loading import Dataset, from_frame
from analysis.pipeline import Analysis
from analysis.surface import effective_flops_per_param_token

C_CHOICES = {"6N": "6 N_total D", "6N_nonemb": "6 N_nonemb D", "detailed": "detailed count"}
N_CHOICES = {"total": "total", "nonemb": "non-embedding"}
BASELINE = ("6N", "total")  # Chinchilla's convention: C = 6 N_total D, N = total parameters


@dataclass
class ConventionFit:
    """Approaches 2 and 3 under one (C, N) pair; a fit that could not run has its reason."""

    flops: str
    params: str
    dataset: Dataset
    approach2: Approach2Fit | None = None
    approach3: Approach3Fit | None = None
    approach3_cost: CostOptimum | None = None  # under a C not proportional to N D
    reasons: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def options(self) -> str:
        """The `scaling-lab fit` options that give this row."""
        return f"--flops {self.flops} --params {self.params}"

    @property
    def cost_a(self) -> tuple[float, list[float] | None] | None:
        """Approach 3's a with its optimum under this C: beta / (alpha + beta) when C is
        proportional to N D, else the local exponent (`cost_optimum`)."""
        if self.approach3_cost is not None:
            return self.approach3_cost.a, self.approach3_cost.ci
        if self.approach3 is not None and self.dataset.conventions.is_6nd:
            return self.approach3.a, self.approach3.ci.get("a")
        return None

    @property
    def label(self) -> str:
        return f"C = {C_CHOICES[self.flops]}, N = {N_CHOICES[self.params]}"


def _table(an: Analysis) -> pd.DataFrame | None:
    """The source table the report's fits came from, when refitting it reproduces `fit`."""
    ds = an.dataset
    if ds.raw is None or ds.source.startswith("example:") or ds.notes or not ds.has_sizes:
        return None  # a shipped example, or runs dropped by --drop-highest: not `fit FILE`
    return ds.raw


def _with_tuning(an: Analysis, table: pd.DataFrame) -> bool:
    """Whether the report's fits kept LR-tuning runs (`--include-tuning`): refit the same."""
    col = find_column(table, "tuning")
    if col is None or "run_id" not in table:
        return False
    tuning = table.loc[as_bool(table[col]), "run_id"].astype(str)
    return bool(tuning.isin(set(an.dataset.points["run_id"].astype(str))).any())


def _approach3(
    an: Analysis, ds: Dataset, shared: dict[str, tuple[np.ndarray, Approach3Fit]]
) -> Approach3Fit:
    """Approach 3 on ds: fitted once per parameter convention, its k set by ds's C."""
    pts = ds.points
    conv = ds.conventions
    k = effective_flops_per_param_token(
        pts["N"], pts["D"], pts["C"], "6ND" if conv.is_6nd else conv.c_flops
    )
    key = pts[["N", "D", "loss"]].to_numpy(dtype=float)
    base = shared.get(conv.params)
    if base is None or base[0].shape != key.shape or not np.array_equal(base[0], key):
        main = an.approach3
        main_pts = an.dataset.points[["N", "D", "loss"]].to_numpy(dtype=float)
        if main is not None and main_pts.shape == key.shape and np.array_equal(main_pts, key):
            fit = main  # the report's own Approach 3 is this fit already
        else:
            fit = fit_approach3(
                pts["N"],
                pts["D"],
                pts["loss"],
                n_boot=int(an.options.get("n_boot_a3", 4000)),  # type: ignore[call-overload]
                seed=int(an.options.get("seed", 0)),  # type: ignore[call-overload]
            )
        shared[conv.params] = base = (key, fit)
    fit = base[1]
    diagnostics = dict(fit.diagnostics, flops_per_param_token=float(k))
    return dataclasses.replace(fit, flops_per_param_token=float(k), diagnostics=diagnostics)


def convention_fits(an: Analysis) -> list[ConventionFit] | None:
    """One ConventionFit per (C, N) pair, C outer; None when the table lacks a convention's
    columns (N_nonemb, C_6N, C_6N_nonemb, C_detailed) or is not a plain file or sweep."""
    table = _table(an)
    if table is None:
        return None
    opts = an.options
    out: list[ConventionFit] = []
    shared: dict[str, tuple[np.ndarray, Approach3Fit]] = {}
    tuning = _with_tuning(an, table)
    for flops in C_CHOICES:
        for params in N_CHOICES:
            try:
                conv = Conventions(params, flops)
                ds = from_frame(table, conv, source=an.dataset.source, include_tuning=tuning)
            except AnalysisError:
                return None  # a convention's column is missing: no section
            row = ConventionFit(flops, params, ds)
            try:
                row.approach2 = fit_approach2(
                    ds.points,
                    n_boot=int(opts.get("n_boot", 1000)),  # type: ignore[call-overload]
                    seed=int(opts.get("seed", 0)),  # type: ignore[call-overload]
                    k_nearest=opts.get("k_nearest"),  # type: ignore[arg-type]
                    include_edge=bool(opts.get("include_edge", False)),
                )
            except FitError as e:
                row.reasons["2"] = str(e)
            try:
                row.approach3 = _approach3(an, ds, shared)
                if ds.has_budgets and not conv.is_6nd:  # as `fit` does (pipeline.run_fits)
                    row.approach3_cost = cost_optimum(row.approach3, ds.points, an.at)
            except (FitError, AnalysisError) as e:
                row.reasons["3"] = str(e)
            out.append(row)
    return out
