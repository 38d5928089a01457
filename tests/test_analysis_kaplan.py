"""Kaplan-style L(X) = (X_c / X)^alpha through the best loss at each size."""

import numpy as np
import pandas as pd
import pytest

from analysis.frontier import fit_kaplan


def test_recovers_a_known_power_law():
    N = np.logspace(4, 7, 7)
    loss = (8.8e13 / N) ** 0.076  # Kaplan et al. 2020's L(N)
    worse = loss * 1.1  # a second, worse run per size: the envelope takes the best
    points = pd.DataFrame({"N": np.r_[N, N], "loss": np.r_[loss, worse]})
    fit = fit_kaplan(points, "N")
    assert fit.supported
    assert fit.alpha == pytest.approx(0.076, rel=1e-6)
    assert fit.X_c == pytest.approx(8.8e13, rel=1e-4)


def test_nearly_flat_law_gives_infinite_x_c_not_an_overflow():
    N = np.logspace(4, 6, 5)
    points = pd.DataFrame({"N": N, "loss": 2.4 * N**-1e-4})  # a saturated loss, barely falling
    fit = fit_kaplan(points, "N")
    assert fit.alpha == pytest.approx(1e-4, rel=1e-3) and fit.X_c == np.inf


def test_too_narrow_a_range_is_not_fitted():
    points = pd.DataFrame({"N": [1e5, 1.2e5, 1.5e5], "loss": [2.0, 1.9, 1.8]})
    fit = fit_kaplan(points, "N")
    assert not fit.supported and "0.5" in fit.reason
