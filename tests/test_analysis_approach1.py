"""Approach 1 (envelope of training curves): misfitting data, conventions, synthetic truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.approach1 import fit_approach1
from analysis.conventions import Conventions
from analysis.errors import FitError
from analysis.examples import load_example
from analysis.synthetic import CHINCHILLA_PUBLISHED, isoflop_grid, training_curves


def test_misfitting_both_conventions_give_different_exponents():
    fits = {}
    for params in ("total", "nonemb"):
        ds = load_example("misfitting", Conventions(params))
        assert ds.curves is not None and len(ds.curves) == 4852
        fits[params] = fit_approach1(ds.curves, n_boot=100, seed=0)
    tot, non = fits["total"], fits["nonemb"]
    for f in (tot, non):
        assert 0.2 < f.a < 0.8
        assert f.a + f.b == pytest.approx(1.0, abs=1e-6)  # C = 6ND under each convention
        assert f.ci["a"][0] < f.a < f.ci["a"][1]
    # Non-embedding counts shrink small models most, so N_opt grows faster with C.
    assert non.a - tot.a > 0.05


def test_synthetic_curves_recover_allocation():
    p = CHINCHILLA_PUBLISHED
    pts = isoflop_grid(
        p, budgets=(1e17, 1e18, 1e19, 1e20, 1e21), sizes_per_budget=9, span_decades=1.6
    )
    curves = training_curves(p, pts, fractions=tuple(np.linspace(0.05, 1.0, 20)))
    fit = fit_approach1(curves, n_boot=0, n_grid=60)
    a_true = p["beta"] / (p["alpha"] + p["beta"])
    assert fit.a == pytest.approx(a_true, abs=0.04)
    assert fit.diagnostics["grid_points_used"] > 30


def test_envelope_won_by_largest_model_is_censored():
    p = CHINCHILLA_PUBLISHED
    # Four fixed sizes trained far past their optimum: at large C the biggest always wins.
    sizes = np.array([1e7, 3e7, 1e8, 3e8])
    pts = pd.DataFrame({"run_id": [f"n{n:.0e}" for n in sizes], "N": sizes, "D": 3e11})
    curves = training_curves(p, pts, fractions=tuple(np.logspace(-3, 0, 30)))
    biggest = curves["N"].max()
    fit = fit_approach1(curves, n_boot=0)
    won_by_biggest = fit.envelope["N"] == biggest
    assert won_by_biggest.any()
    assert fit.envelope.loc[won_by_biggest, "censored"].all()
    assert any("censored" in w for w in fit.warnings)


def test_no_curves_is_a_clear_error():
    with pytest.raises(FitError, match="training curves"):
        fit_approach1(None)
