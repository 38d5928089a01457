"""Hold out the largest budget: fit on the rest, predict it, compare with what was measured.

"Largest" is the largest budget with 3+ model sizes (a minimum needs a parabola); it and
every larger budget (too few sizes to measure, but not to be trained on) are held out.

The honest test of a scaling law is extrapolation. Predictions: Approach 3's compute-optimal
loss and N_opt at the largest budget, and Approach 2's frontier N_opt ~ C^a with a loss
frontier fitted through the smaller budgets' parabola minima. Measurement: the Approach-2
parabola minimum (N and loss) at the largest budget itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.approach2 import budget_groups, fit_approach2, log_c_at, parabola_minima
from analysis.approach3 import fit_approach3
from analysis.errors import FitError
from analysis.planner import loss_at
from analysis.powerlaw import fit_power_law, fit_saturating
from analysis.surface import effective_flops_per_param_token


def holdout_largest(
    points: pd.DataFrame, k_nearest: int | None = None, flops: str = "6ND"
) -> dict[str, object]:
    """Relative loss error and N_opt ratio (predicted / measured) at the largest measurable budget.

    `flops`: "6ND" when C = 6 N D with the points' N, else the FLOP convention of their C
    (Approach 3 then turns C into N and D with the runs' effective FLOPs per parameter-token).
    """
    budgets = budget_groups(points)
    uniq = np.unique(budgets)
    n_sizes = np.array([points.loc[budgets == C, "N"].nunique() for C in uniq])
    measurable = uniq[n_sizes >= 3]
    if measurable.size == 0:
        raise FitError("--holdout-largest needs a budget with 3+ model sizes to measure")
    C_max = float(measurable[-1])
    if np.unique(budgets[budgets < C_max]).size < 2:
        raise FitError(
            f"--holdout-largest holds out C >= {C_max:.3g} (the largest budget with 3+ sizes) "
            "and needs 2+ smaller budgets to fit"
        )
    held = points.loc[budgets == C_max]
    train = points.loc[budgets < C_max].copy()
    train["budget"] = budgets[budgets < C_max]
    above = uniq[uniq > C_max]
    logN = np.log(held["N"].to_numpy())
    xm, ym, _ = parabola_minima(logN, held["loss"].to_numpy(), np.ones((1, len(held))))
    if not np.isfinite(xm[0]):
        raise FitError("the largest budget's IsoFLOP profile has no minimum (parabola opens down)")
    measured = {"N_opt": float(np.exp(xm[0])), "loss": float(ym[0])}
    # The fits predict at the held-out budget's C in the chosen convention, at its optimum
    # (the C that Approach 2's frontier is fitted against); C_max is only its nominal name.
    C_eval = float(np.exp(log_c_at(logN, np.log(held["C"].to_numpy(dtype=float)), xm)[0]))
    edge = not (logN.min() < xm[0] < logN.max())
    out: dict[str, object] = {
        "budget": C_max,
        "why": "the largest budget with 3+ sizes; it and every larger budget are held out",
        "held_out_budgets": [float(C) for C in (C_max, *above)],
        "held_out_runs": int((budgets >= C_max).sum()),
        "C_at_optimum": C_eval,
        "measured": measured,
        "measured_at_edge": edge,
        "predictions": {},
    }
    preds: dict[str, dict[str, float]] = {}
    k = effective_flops_per_param_token(train["N"], train["D"], train["C"], flops)
    a3 = fit_approach3(train["N"], train["D"], train["loss"], n_boot=0, flops_per_param_token=k)
    n3, d3 = a3.optimal(C_eval)
    preds["approach3"] = {
        "N_opt": float(n3),
        "loss": float(loss_at(np.array(list(a3.params.values())), n3, d3)),
    }
    try:
        a2 = fit_approach2(train, n_boot=0, k_nearest=k_nearest)
        clean = a2.budgets.loc[a2.budgets["in_frontier"]]
        law = fit_saturating(clean["C_opt"].to_numpy(), clean["loss_opt"].to_numpy())
        loss2 = (
            float(law(C_eval))
            if law is not None
            else float(fit_power_law(clean["C_opt"], clean["loss_opt"])(C_eval))
        )
        preds["approach2"] = {"N_opt": float(a2.n_opt(C_eval)), "loss": loss2}
    except FitError as e:
        out["approach2_error"] = str(e)
    for p in preds.values():
        p["loss_rel_error"] = (p["loss"] - measured["loss"]) / measured["loss"]
        p["N_opt_ratio"] = p["N_opt"] / measured["N_opt"]
    out["predictions"] = preds
    return out
