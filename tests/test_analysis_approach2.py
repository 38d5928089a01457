"""Approach 2 (IsoFLOP parabolas) on synthetic ground truth: exponents, edges, k-nearest, seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.approach2 import budget_groups, fit_approach2, parabola_minima
from analysis.errors import FitError
from analysis.synthetic import CHINCHILLA_PUBLISHED, isoflop_grid

P = CHINCHILLA_PUBLISHED
A_TRUE = P["beta"] / (P["alpha"] + P["beta"])


def test_parabola_minimum_by_hand():
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
    y = 3.0 + 0.5 * (x - 0.7) ** 2
    xm, ym, coef = parabola_minima(x, y, np.ones((1, x.size)))
    assert xm[0] == pytest.approx(0.7) and ym[0] == pytest.approx(3.0)
    np.testing.assert_allclose(coef[0], [3.0 + 0.5 * 0.49, -0.7, 0.5], atol=1e-10)


def test_noise_free_recovers_a_and_b():
    """Narrow span: the profile is nearly a parabola in log N, so a is exact to 2e-3."""
    df = isoflop_grid(P, span_decades=0.6, sizes_per_budget=7)
    fit = fit_approach2(df, n_boot=0)
    assert fit.a == pytest.approx(A_TRUE, abs=2e-3)
    assert fit.b == pytest.approx(1 - A_TRUE, abs=2e-3)
    assert fit.a + fit.b == pytest.approx(1.0, abs=1e-9)  # C = 6ND exactly at every budget
    assert not fit.warnings


def test_noisy_recovers_a_within_interval():
    df = isoflop_grid(P, noise=0.003, seed=2, seeds_per_point=3)
    fit = fit_approach2(df, n_boot=300, seed=0)
    assert fit.a == pytest.approx(A_TRUE, abs=0.03)
    lo, hi = fit.ci["a"]
    assert lo < fit.a < hi and hi - lo > 0.002
    t = fit.tokens_per_param(1e21)
    assert t["ci"][0] < t["value"] < t["ci"][1]


def test_minimum_at_edge_is_flagged_and_left_out():
    df = isoflop_grid(P, budgets=(1e18, 1e19, 1e20, 1e21))
    # At 1e21 keep only sizes well above the optimum: the minimum lies below the sampled range.
    n_opt_1e21 = df.loc[df["budget"] == 1e21, "N"].median()
    df = df.loc[(df["budget"] != 1e21) | (df["N"] > 1.5 * n_opt_1e21)]
    fit = fit_approach2(df, n_boot=0)
    row = fit.budgets.set_index("budget").loc[1e21]
    assert bool(row["edge"]) and not bool(row["in_frontier"])
    assert any("edge" in w and "left out" in w for w in fit.warnings)
    assert fit.diagnostics["budgets_in_frontier"] == 3
    assert fit.a == pytest.approx(A_TRUE, abs=0.01)  # unaffected by the bad budget
    kept = fit_approach2(df, n_boot=0, include_edge=True)
    assert kept.diagnostics["budgets_in_frontier"] == 4


def test_k_nearest_fits_only_sizes_near_minimum():
    """Over a 30x+ size range the profile is skewed; k nearest sizes fix the vertex."""
    df = isoflop_grid(P, span_decades=2.0, sizes_per_budget=11)
    wide = fit_approach2(df, n_boot=0)
    near = fit_approach2(df, n_boot=0, k_nearest=5)
    assert (near.budgets["sizes_used"] == 5).all()
    assert abs(near.a - A_TRUE) < abs(wide.a - A_TRUE) + 1e-12
    assert near.a == pytest.approx(A_TRUE, abs=5e-3)


def test_seeds_are_averaged():
    base = isoflop_grid(P, budgets=(1e18, 1e19, 1e20))
    up, down = base.copy(), base.copy()
    up["loss"] += 0.01
    down["loss"] -= 0.01
    fit2 = fit_approach2(pd.concat([up, down], ignore_index=True), n_boot=0)
    fit1 = fit_approach2(base, n_boot=0)
    np.testing.assert_allclose(fit2.budgets["N_opt"], fit1.budgets["N_opt"], rtol=1e-9)
    np.testing.assert_allclose(fit2.budgets["loss_opt"], fit1.budgets["loss_opt"], rtol=1e-9)


def test_budget_groups_without_budget_column():
    df = isoflop_grid(P, budgets=(1e18, 1e19)).drop(columns=["budget"])
    df["C"] = df["C"] * np.linspace(0.99, 1.01, len(df))  # integer-step rounding of real sweeps
    groups = budget_groups(df)
    assert np.unique(groups).size == 2


def test_too_few_budgets_is_a_clear_error():
    df = isoflop_grid(P, budgets=(1e18,))
    with pytest.raises(FitError, match=r"2\+ budgets"):
        fit_approach2(df, n_boot=0)


def test_percentile_ci_withholds_interval_when_resamples_fail():
    from analysis.bootstrap import invalid_fraction, percentile_ci

    s = np.arange(1000, dtype=float)
    s[:100] = np.nan  # 10% invalid: more than one 2.5% tail could hold
    assert np.isnan(percentile_ci(s, 0.95)).all() and invalid_fraction(s) == 0.1
    s[20:100] = np.arange(80.0)  # 2% invalid: the interval stands
    lo, hi = percentile_ci(s, 0.95)
    assert np.isfinite([lo, hi]).all() and lo < hi


def test_three_size_budget_has_no_interval_others_have_real_ones():
    """With exactly 3 sizes a parabola passes through them: no interval, not a zero-width one."""
    df = isoflop_grid(P, budgets=(1e18, 1e19, 1e20, 1e21), noise=0.003, seed=3)
    mid = df.loc[df["budget"] == 1e19, "N"].sort_values().to_numpy()[[2, 4, 6]]
    df = df.loc[(df["budget"] != 1e19) | df["N"].isin(mid)]
    fit = fit_approach2(df, n_boot=200, seed=0)
    by = fit.budgets.set_index("budget")
    assert by.loc[1e19, "n_sizes"] == 3 and by.loc[1e19, "N_opt_ci"] is None
    for C in (1e18, 1e20, 1e21):
        lo, hi = by.loc[C, "N_opt_ci"]
        assert lo < by.loc[C, "N_opt"] < hi and hi / lo > 1.01
    assert "invalid_fraction_by_budget" in fit.diagnostics["bootstrap"]


def test_budget_whose_resamples_lack_a_minimum_gets_no_interval():
    df = isoflop_grid(P, budgets=(1e18, 1e19, 1e20), noise=0.002, seed=4)
    rng = np.random.default_rng(0)
    flat = df["budget"] == 1e20  # a shallow, noisy profile: many resamples open downward
    x = np.log(df.loc[flat, "N"].to_numpy())
    df.loc[flat, "loss"] = 2.5 + 0.003 * (x - x.mean()) ** 2 + 0.01 * rng.standard_normal(x.size)
    fit = fit_approach2(df, n_boot=200, seed=0, include_edge=True)
    row = fit.budgets.set_index("budget").loc[1e20]
    assert np.isfinite(row["N_opt"]) and row["boot_invalid"] > 0.025 and row["N_opt_ci"] is None
    assert fit.diagnostics["bootstrap"]["invalid_fraction_by_budget"]["1e+20"] > 0.025
    assert any("1e+20: no N_opt interval" in w for w in fit.warnings)


def test_residual_bootstrap_intervals_cover_the_truth():
    from analysis.approach3 import compute_optimal

    budgets = (1e18, 1e19, 1e20, 1e21, 1e22)
    df = isoflop_grid(P, budgets=budgets, noise=0.002, seed=0)
    fit = fit_approach2(df, n_boot=300, seed=1)
    truth = compute_optimal(
        np.array([P[k] for k in ("E", "A", "B", "alpha", "beta")]), np.array(budgets)
    )[0]
    cis = np.array(fit.budgets["N_opt_ci"].tolist())
    assert ((cis[:, 0] < truth) & (truth < cis[:, 1])).sum() >= 4
    assert fit.ci["a"][0] < A_TRUE < fit.ci["a"][1]


def _profile_table(a0: float, gamma: float) -> pd.DataFrame:
    """Noise-free IsoFLOP profiles with a known answer under two FLOP counts.

    At nominal budget B (C_6N = B for every run) the loss is a parabola in log N with its
    minimum at N_opt = 1e-3 B^a0. The detailed count is C_detailed = 6 N D (N/1e4)^-gamma
    (attention: a larger share for smaller models), so at each optimum C_detailed =
    B (N_opt/1e4)^-gamma, and N_opt ~ C_detailed^(a0 / (1 - gamma a0)) exactly.
    """
    rows = []
    for B in (1e12, 4e12, 1.6e13, 6.4e13):
        n_opt = 1e-3 * B**a0
        for lg in np.linspace(-0.6, 0.6, 7):
            N = n_opt * 10**lg
            D = B / (6 * N)
            rows.append(
                {
                    "budget": B,
                    "N": N,
                    "D": D,
                    "C_6N": 6 * N * D,
                    "C_detailed": 6 * N * D * (N / 1e4) ** -gamma,
                    "loss": 2.0 + 0.1 * lg**2,
                }
            )
    return pd.DataFrame(rows)


def test_the_frontier_follows_the_flop_convention_asked_for():
    """Runs are grouped by nominal budget, but the frontier is fitted against the chosen C
    at each budget's optimum: 6ND gives a0, the detailed count a0 / (1 - gamma a0)."""
    from analysis.conventions import Conventions
    from analysis.loading import from_frame

    a0, gamma = 0.5, 0.1
    table = _profile_table(a0, gamma)
    six = fit_approach2(from_frame(table, Conventions("total", "6ND")).points, n_boot=0)
    det = fit_approach2(from_frame(table, Conventions("total", "detailed")).points, n_boot=0)
    assert six.a == pytest.approx(a0, abs=1e-9)
    assert det.a == pytest.approx(a0 / (1 - gamma * a0), abs=1e-9)  # 0.5263, not 0.5
    # Same minima, same nominal budgets; only the C they are placed at differs.
    np.testing.assert_allclose(det.budgets["N_opt"], six.budgets["N_opt"], rtol=1e-12)
    np.testing.assert_array_equal(det.budgets["budget"], six.budgets["budget"])
    n_opt = six.budgets["N_opt"].to_numpy()
    np.testing.assert_allclose(
        det.budgets["C_opt"], six.budgets["budget"] * (n_opt / 1e4) ** -gamma, rtol=1e-9
    )
    # The bootstrap's frontier lines use each resample's own C at its own N_opt.
    noisy = table.assign(loss=table["loss"] + np.random.default_rng(0).normal(0, 1e-3, len(table)))
    det_b = fit_approach2(from_frame(noisy, Conventions("total", "detailed")).points, n_boot=200)
    six_b = fit_approach2(from_frame(noisy, Conventions("total", "6ND")).points, n_boot=200)
    assert det_b.ci["a"][0] > six_b.ci["a"][0] and det_b.ci["a"][1] > six_b.ci["a"][1]
