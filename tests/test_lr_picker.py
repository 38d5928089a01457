"""The LR picker on synthetic loss-vs-LR curves whose optimum is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.lr_tuning import (
    LrLaw,
    LrTuningError,
    fit_lr_law,
    pick_lr,
    picks_by_size,
    policy_sentence,
)


def _curve(lr_opt: float, lrs: np.ndarray, curvature: float = 0.05, floor: float = 2.0):
    return floor + curvature * np.log(lrs / lr_opt) ** 2


@pytest.mark.parametrize("lr_opt", [1e-3, 1.7e-3, 2.9e-3, 0.37e-3])  # on, between, next to the edge
def test_recovers_optimum_on_and_between_grid_points(lr_opt: float) -> None:
    lrs = 1e-3 * 2.0 ** np.arange(-2, 3)  # 5 values over 16x
    pick = pick_lr(lrs, _curve(lr_opt, lrs))
    assert pick.warning is None and pick.interpolated
    assert pick.lr == pytest.approx(lr_opt, rel=1e-6)
    assert pick.loss == pytest.approx(2.0, abs=1e-9)


def test_between_grid_points_beats_argmin_on_skewed_curve() -> None:
    """A non-parabolic (asymmetric) curve: the vertex is still much closer than the argmin."""
    lrs = 1e-3 * 2.0 ** np.arange(-3, 4)
    true = 2.7e-3
    x = np.log(lrs / true)
    losses = 2.0 + 0.04 * x**2 + 0.01 * np.maximum(x, 0) ** 3
    pick = pick_lr(lrs, losses)
    argmin = lrs[int(np.argmin(losses))]
    assert abs(math.log(pick.lr / true)) < 0.5 * abs(math.log(argmin / true))


def test_unsorted_input_and_diverged_points() -> None:
    lrs = np.array([4e-3, 1e-3, 2e-3, 8e-3, 5e-4, 1.6e-2])
    losses = _curve(1.5e-3, lrs)
    losses[lrs == 1.6e-2] = np.nan  # diverged
    pick = pick_lr(lrs, losses)
    assert pick.lr == pytest.approx(1.5e-3, rel=1e-6)


def test_edge_optimum_warns_and_returns_the_edge() -> None:
    lrs = 1e-3 * 2.0 ** np.arange(5)
    pick = pick_lr(lrs, _curve(1e-4, lrs))
    assert pick.lr == pytest.approx(1e-3)
    assert "lowest of the grid" in pick.warning and not pick.interpolated
    assert "highest" in pick_lr(lrs, _curve(1.0, lrs)).warning


def test_errors() -> None:
    with pytest.raises(LrTuningError, match="every tuning run diverged"):
        pick_lr([1e-3, 2e-3], [np.nan, np.inf])
    with pytest.raises(LrTuningError, match="as many losses"):
        pick_lr([1e-3, 2e-3], [1.0])


def test_power_law_fit_recovers_exponent_and_interpolates() -> None:
    sizes = np.array([1e4, 4e4, 1.6e5, 6.4e5])
    law_true = LrLaw(3e-3, 1e5, -0.3)
    law = fit_lr_law(sizes, law_true(sizes))
    assert law.exponent == pytest.approx(-0.3)
    assert law(2e4) == pytest.approx(law_true(2e4))
    assert fit_lr_law([5e4], [2e-3]).exponent == 0.0


def test_picks_by_size_averages_seeds_then_law() -> None:
    sizes, lrs, losses = [], [], []
    for n, opt in [(1e4, 4e-3), (1e5, 2e-3)]:
        for lr in 1e-3 * 2.0 ** np.arange(-2, 3):
            for seed_noise in (-0.001, 0.001):
                sizes.append(n)
                lrs.append(lr)
                losses.append(_curve(opt, np.array(lr)) + seed_noise)
    picks = picks_by_size(sizes, lrs, losses)
    assert picks[1e4].lr == pytest.approx(4e-3, rel=1e-6)
    law = fit_lr_law(list(picks), [p.lr for p in picks.values()])
    assert law.exponent == pytest.approx(math.log(0.5) / math.log(10.0))


def test_policy_sentence() -> None:
    text = policy_sentence(["tuned", "tuned"], {"lr_ref": 2e-3, "n_ref": 1e5, "exponent": -0.1})
    assert "tuned per size" in text and "LR_opt(N) = 0.002" in text
    assert "fixed peak learning rate" in policy_sentence(["fixed"])
