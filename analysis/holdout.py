"""Hold out the largest budget: fit on the rest, predict it, compare with what was measured.

The honest test of a scaling law is extrapolation. Predictions: Approach 3's compute-optimal
loss and N_opt at the largest budget, and Approach 2's frontier N_opt ~ C^a with a loss
frontier fitted through the smaller budgets' parabola minima. Measurement: the Approach-2
parabola minimum (N and loss) at the largest budget itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.approach2 import budget_groups, fit_approach2, parabola_minima
from analysis.approach3 import fit_approach3
from analysis.errors import FitError
from analysis.planner import loss_at
from analysis.powerlaw import fit_power_law, fit_saturating


def holdout_largest(points: pd.DataFrame, k_nearest: int | None = None) -> dict[str, object]:
    """Relative loss error and N_opt ratio (predicted / measured) at the largest budget."""
    budgets = budget_groups(points)
    uniq = np.unique(budgets)
    if uniq.size < 3:
        raise FitError("--holdout-largest needs 3+ budgets (2 to fit, 1 to predict)")
    C_max = float(uniq[-1])
    held = points.loc[budgets == C_max]
    train = points.loc[budgets != C_max].copy()
    train["budget"] = budgets[budgets != C_max]
    logN = np.log(held["N"].to_numpy())
    if np.unique(logN).size < 3:
        raise FitError("the largest budget needs 3+ sizes to measure its IsoFLOP minimum")
    xm, ym, _ = parabola_minima(logN, held["loss"].to_numpy(), np.ones((1, len(held))))
    if not np.isfinite(xm[0]):
        raise FitError("the largest budget's IsoFLOP profile has no minimum (parabola opens down)")
    measured = {"N_opt": float(np.exp(xm[0])), "loss": float(ym[0])}
    edge = not (logN.min() < xm[0] < logN.max())
    out: dict[str, object] = {
        "budget": C_max,
        "measured": measured,
        "measured_at_edge": edge,
        "predictions": {},
    }
    preds: dict[str, dict[str, float]] = {}
    a3 = fit_approach3(train["N"], train["D"], train["loss"], n_boot=0)
    n3, d3 = a3.optimal(C_max)
    preds["approach3"] = {
        "N_opt": float(n3),
        "loss": float(loss_at(np.array(list(a3.params.values())), n3, d3)),
    }
    try:
        a2 = fit_approach2(train, n_boot=0, k_nearest=k_nearest)
        clean = a2.budgets.loc[a2.budgets["in_frontier"]]
        law = fit_saturating(clean["budget"].to_numpy(), clean["loss_opt"].to_numpy())
        loss2 = (
            float(law(C_max))
            if law is not None
            else float(fit_power_law(clean["budget"], clean["loss_opt"])(C_max))
        )
        preds["approach2"] = {"N_opt": float(a2.n_opt(C_max)), "loss": loss2}
    except FitError as e:
        out["approach2_error"] = str(e)
    for p in preds.values():
        p["loss_rel_error"] = (p["loss"] - measured["loss"]) / measured["loss"]
        p["N_opt_ratio"] = p["N_opt"] / measured["N_opt"]
    out["predictions"] = preds
    return out
