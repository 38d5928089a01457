"""Approach 3's optimum under a FLOP count that is not k N D with one k: known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.approach3 import Approach3Fit
from analysis.cost_optimum import cost_optimum
from analysis.surface import PARAM_NAMES

P = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
BUDGETS = (1e13, 3e13, 1e14, 3e14)


def _runs(gamma: float) -> pd.DataFrame:
    """Runs whose FLOPs per parameter-token are k(N) = 6 (N / 1e5)^-gamma."""
    N = np.geomspace(1e4, 1e7, 13)
    D = np.full(N.size, 1e7)
    return pd.DataFrame({"N": N, "D": D, "C": 6 * (N / 1e5) ** -gamma * N * D})


@pytest.mark.parametrize("gamma", [0.0, 0.1, -0.05])
def test_local_exponent_has_the_closed_form(gamma):
    """With C = c N^(1-gamma) D, minimising L gives N_opt ~ C^(beta / (alpha + beta (1 -
    gamma))); gamma = 0 is beta / (alpha + beta), Approach 3's own a."""
    fit = Approach3Fit(params=P, objective=0.0, n_points=13)
    out = cost_optimum(fit, _runs(gamma), BUDGETS)
    expected = P["beta"] / (P["alpha"] + P["beta"] * (1 - gamma))
    assert out.a == pytest.approx(expected, abs=1e-5)
    # N_opt at each budget is a stationary point of L along the budget (grid + parabola).
    for C, n in zip(BUDGETS, out.n_opt, strict=True):
        k = 6 * (n / 1e5) ** -gamma
        D = C / (k * n)
        dL = (
            -P["alpha"] * P["A"] * n ** -P["alpha"]
            + (1 - gamma) * P["beta"] * P["B"] * D ** -P["beta"]
        )
        assert abs(dL) < 1e-4 * P["alpha"] * P["A"] * n ** -P["alpha"]


def test_interval_comes_from_approach_3s_resamples():
    rng = np.random.default_rng(0)
    base = np.array([P[k] for k in PARAM_NAMES])
    samples = base * np.exp(rng.normal(0, 0.02, (600, 5)))
    fit = Approach3Fit(params=P, objective=0.0, n_points=13, samples=samples)
    out = cost_optimum(fit, _runs(0.1), BUDGETS)
    a_each = samples[:, 4] / (samples[:, 3] + samples[:, 4] * 0.9)  # closed form per resample
    lo, hi = np.percentile(a_each, [2.5, 97.5])
    assert out.ci == pytest.approx([lo, hi], abs=1e-4)
    assert cost_optimum(fit, _runs(0.1), (1e13,)) is None  # one budget: no slope
