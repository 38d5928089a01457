"""Approach 3: the Chinchilla acceptance numbers, synthetic ground truth, and the optimiser."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from analysis.approach3 import compute_optimal, fit_approach3, param_array
from analysis.bootstrap import resample_weights
from analysis.examples import load_example
from analysis.huber_newton import newton_fit, objective, objective_grad_hess
from analysis.synthetic import CHINCHILLA_PUBLISHED, isoflop_grid


@pytest.fixture(scope="module")
def chinchilla():
    return load_example("chinchilla").points


@pytest.fixture(scope="module")
def chinchilla_fit(chinchilla):
    return fit_approach3(chinchilla["N"], chinchilla["D"], chinchilla["loss"], n_boot=1000, seed=0)


def test_chinchilla_reproduces_besiroglu_refit(chinchilla, chinchilla_fit):
    assert len(chinchilla) == 240
    p = chinchilla_fit.params
    assert p["E"] == pytest.approx(1.817, abs=0.005)
    assert p["alpha"] == pytest.approx(0.347, abs=0.003)
    assert p["beta"] == pytest.approx(0.367, abs=0.003)
    # The tight-tolerance optimum quoted in the data README (objective 1.01827e-3).
    assert chinchilla_fit.objective == pytest.approx(1.01827e-3, rel=1e-5)
    assert p["A"] == pytest.approx(477.8, rel=2e-3)
    assert p["B"] == pytest.approx(2143, rel=2e-3)


def test_chinchilla_tokens_per_param_and_interval_width(chinchilla_fit):
    t = chinchilla_fit.tokens_per_param(5.88e23)
    assert 16 <= t["value"] <= 20
    assert chinchilla_fit.tokens_per_param(1e21)["value"] == pytest.approx(21, abs=1)
    lo, hi = chinchilla_fit.ci["alpha"]
    assert hi - lo > 0.03  # a collapsed CI is the default-tolerance L-BFGS failure
    # Besiroglu et al.'s 95% CI for alpha is 0.317-0.373.
    assert lo == pytest.approx(0.317, abs=0.006) and hi == pytest.approx(0.373, abs=0.006)
    assert chinchilla_fit.diagnostics["bootstrap"]["converged"] == 1000


def test_noise_free_recovers_all_five_parameters():
    df = isoflop_grid(CHINCHILLA_PUBLISHED, noise=0.0)
    fit = fit_approach3(df["N"], df["D"], df["loss"], n_boot=0)
    for k, v in CHINCHILLA_PUBLISHED.items():
        assert fit.params[k] == pytest.approx(v, rel=1e-3), k


def test_noisy_recovers_allocation_exponents():
    truth = {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37}
    df = isoflop_grid(
        truth, noise=0.003, seed=3, seeds_per_point=2, budgets=(1e18, 1e19, 1e20, 1e21, 1e22)
    )
    fit = fit_approach3(df["N"], df["D"], df["loss"], n_boot=200, seed=1)
    a_true = truth["beta"] / (truth["alpha"] + truth["beta"])
    assert fit.a == pytest.approx(a_true, abs=0.02)
    assert fit.b == pytest.approx(1 - a_true, abs=0.02)
    assert fit.ci["a"][0] - 0.01 <= a_true <= fit.ci["a"][1] + 0.01


def test_compute_optimal_formula_by_hand():
    p = CHINCHILLA_PUBLISHED
    C = 5.88e23
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    n, d = compute_optimal(param_array(p), np.array(C))
    assert n == pytest.approx(G * (C / 6) ** (0.28 / 0.62))
    assert 6 * n * d == pytest.approx(C)
    # At the optimum dL/dN along C = 6ND vanishes: alpha A / N^alpha = beta B / D^beta.
    assert p["alpha"] * p["A"] / n ** p["alpha"] == pytest.approx(
        p["beta"] * p["B"] / d ** p["beta"]
    )


def test_gradient_and_hessian_match_finite_differences(chinchilla):
    lN, lD, lL = (np.log(chinchilla[c].to_numpy()) for c in ("N", "D", "loss"))
    th = np.array([[0.6, 6.2, 7.6, 0.35, 0.37]])
    w = resample_weights(lL.size, 1, seed=5)
    _, g, H = objective_grad_hess(th, lN, lD, lL, w)
    eps = 1e-6
    for k in range(5):
        d = np.zeros((1, 5))
        d[0, k] = eps
        fd = (objective(th + d, lN, lD, lL, w) - objective(th - d, lN, lD, lL, w)) / (2 * eps)
        assert g[0, k] == pytest.approx(fd[0], rel=1e-5, abs=1e-10)
        gd = (
            objective_grad_hess(th + d, lN, lD, lL, w)[1]
            - objective_grad_hess(th - d, lN, lD, lL, w)[1]
        ) / (2 * eps)
        np.testing.assert_allclose(H[0, k], gd[0], rtol=1e-4, atol=1e-8)


def test_newton_bootstrap_matches_tight_lbfgsb(chinchilla, chinchilla_fit):
    """Same resamples, independent optimiser: Newton is never worse than L-BFGS-B."""
    lN, lD, lL = (np.log(chinchilla[c].to_numpy()) for c in ("N", "D", "loss"))
    p = chinchilla_fit.params
    start = np.array([np.log(p["E"]), np.log(p["A"]), np.log(p["B"]), p["alpha"], p["beta"]])
    w = resample_weights(lL.size, 4, seed=11)
    newton = newton_fit(np.tile(start, (4, 1)), lN, lD, lL, w)
    for r in range(4):

        def fun(x, r=r):
            f, g, _ = objective_grad_hess(x[None], lN, lD, lL, w[r : r + 1])
            return f[0], g[0]

        ref = minimize(
            fun,
            start,
            jac=True,
            method="L-BFGS-B",
            options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000},
        )
        assert newton.objective_R[r] <= ref.fun * (1 + 1e-7)
        assert newton.theta_Rx5[r, 3] == pytest.approx(ref.x[3], abs=2e-3)


def test_too_few_points_is_a_clear_error():
    from analysis.errors import FitError

    with pytest.raises(FitError, match="at least 6"):
        fit_approach3([1e8, 2e8], [1e9, 2e9], [3.0, 2.9])
