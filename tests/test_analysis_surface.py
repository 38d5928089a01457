"""The one L(N, D) surface: formula, exponents, compute-optimal allocation and its inverses."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from analysis import surface
from analysis.approach3 import Approach3Fit
from analysis.synthetic import CHINCHILLA_PUBLISHED

P = surface.param_array(CHINCHILLA_PUBLISHED)


def test_loss_and_exponents_by_hand():
    assert float(surface.loss(P, 1e9, 2e10)) == pytest.approx(
        1.69 + 406.4 / 1e9**0.34 + 410.7 / 2e10**0.28
    )
    a, b = surface.allocation_exponents(0.34, 0.28)
    assert (float(a), float(b)) == pytest.approx((0.28 / 0.62, 0.34 / 0.62))


@pytest.mark.parametrize("k", [6.0, 7.5])
def test_compute_optimal_minimises_loss_on_the_budget_line(k):
    """For C = k N D, the closed form equals a numerical minimisation of L(N, C/(kN))."""
    C = 1e21
    n, d = surface.compute_optimal(P, C, k)
    assert k * n * d == pytest.approx(C)
    res = minimize_scalar(
        lambda ln: float(surface.loss(P, np.exp(ln), C / (k * np.exp(ln)))),
        bounds=(np.log(1e6), np.log(1e12)),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert float(n) == pytest.approx(np.exp(res.x), rel=1e-4)


def test_flops_per_param_token_changes_the_allocation():
    """The hard-coded C/6 is gone: a fit on a count with 7.5 FLOPs/param-token plans smaller."""
    fit6 = Approach3Fit(params=dict(CHINCHILLA_PUBLISHED), objective=0.0, n_points=10)
    fit75 = Approach3Fit(
        params=dict(CHINCHILLA_PUBLISHED), objective=0.0, n_points=10, flops_per_param_token=7.5
    )
    n6, _ = fit6.optimal(1e22)
    n75, d75 = fit75.optimal(1e22)
    assert float(n75 / n6) == pytest.approx((6 / 7.5) ** fit6.a)
    assert 7.5 * float(n75 * d75) == pytest.approx(1e22)


def test_effective_flops_per_param_token():
    N, D = np.array([1e6, 2e6]), np.array([1e8, 1e8])
    assert surface.effective_flops_per_param_token(N, D, 6.0 * N * D) == 6.0
    C = np.array([7.0, 8.0]) * N * D
    assert surface.effective_flops_per_param_token(N, D, C, "detailed") == pytest.approx(7.5)


def test_inverses_of_the_allocation():
    n, d = surface.compute_optimal(P, 3e22)
    assert float(surface.optimal_tokens_for(P, n)) == pytest.approx(float(d), rel=1e-10)
    assert float(surface.optimal_params_for(P, d)) == pytest.approx(float(n), rel=1e-10)
