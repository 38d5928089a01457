"""Data-constrained law (Muennighoff et al. 2023): published values and the fit's ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import repetition
from analysis.reference import get_reference
from analysis.repetition_fit import fit_repetition
from analysis.synthetic import repetition_runs

SIZES = (1e8, 3e8, 1e9, 3e9)
EPOCHS = (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
POOLS = (1e9, 1e10)


def test_published_law_reproduces_their_readme():
    """Their README prints scaling_law(N, D, U) for the two models of their Figure 1."""
    _, p = repetition.published()
    for N, D, U, expected in get_reference("muennighoff2023")["check"]["rows"]:
        assert float(repetition.loss(p, N, D, U)) == pytest.approx(expected, rel=1e-12)


def test_effective_data_by_hand():
    _, p = repetition.published()
    U = 1e10
    # one epoch: nothing repeated, D' = D; 1 + R epochs: U (1 + R* (1 - e^(-R/R*)))
    _, d1 = repetition.effective(p, 1e8, U, U)
    assert float(d1) == pytest.approx(U)
    _, d16 = repetition.effective(p, 1e8, 16 * U, U)
    assert float(d16) == pytest.approx(U * (1 + 15.387756 * (1 - np.exp(-15 / 15.387756))))
    # a run shorter than the pool sees only D unique tokens
    _, d_half = repetition.effective(p, 1e8, 0.5 * U, U)
    assert float(d_half) == pytest.approx(0.5 * U)


def test_fit_recovers_known_decay_constants_exactly_without_noise():
    _, truth = repetition.published()
    df = repetition_runs(truth, SIZES, EPOCHS, POOLS)
    fit = fit_repetition(df.N, df.D, df.U, df.loss, n_boot=0)
    assert fit.params["R_D_star"] == pytest.approx(15.387756, rel=1e-4)
    assert fit.params["R_N_star"] == pytest.approx(5.309743, rel=1e-4)


def test_fit_recovers_known_decay_constants_with_noise_inside_its_interval():
    truth = repetition.with_decay(repetition.published()[1][:5], np.array([8.0, 3.0]))
    df = repetition_runs(truth, SIZES, EPOCHS, POOLS, noise=0.003, seed=1)
    fit = fit_repetition(df.N, df.D, df.U, df.loss, n_boot=30, seed=0)
    assert fit.params["R_D_star"] == pytest.approx(8.0, rel=0.15)
    assert fit.params["R_N_star"] == pytest.approx(3.0, rel=0.25)
    lo, hi = fit.ci["R_D_star"]
    assert lo < 8.0 < hi


def test_fixed_parameter_stays_fixed_and_unrepeated_data_is_refused():
    _, truth = repetition.published()
    df = repetition_runs(truth, SIZES, EPOCHS, POOLS)
    fit = fit_repetition(df.N, df.D, df.U, df.loss, n_boot=0, fixed={"R_N_star": 5.309743})
    assert fit.params["R_N_star"] == 5.309743
    assert fit.params["R_D_star"] == pytest.approx(15.387756, rel=1e-4)
    from analysis.errors import FitError

    fresh = df[df.epochs <= 1]
    with pytest.raises(FitError, match="repeats"):
        fit_repetition(fresh.N, fresh.D, fresh.U, fresh.loss, n_boot=0)
