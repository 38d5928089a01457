"""Figures: what a reader needs to decode them is on them, and nothing hides the data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb

from analysis.loading import from_frame
from analysis.lr_report import lr_tuning_figure
from analysis.pipeline import run_fits
from analysis.plots import isoflop, residuals, tokens_per_param
from analysis.synthetic import CHINCHILLA_PUBLISHED, isoflop_grid

BUDGETS = tuple(np.logspace(17, 21, 24))  # many budgets: a legend entry each would cover the data


@pytest.fixture(scope="module")
def many():
    pts = isoflop_grid(CHINCHILLA_PUBLISHED, budgets=BUDGETS, noise=0.002, seed=1)
    return run_fits(from_frame(pts), ("2", "3"), n_boot=0, n_boot_a3=50)


def _colorbar(fig):
    (bar,) = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    return bar


def _budget_ticks(bar) -> list[float]:
    return [float(t.get_text()) for t in bar.get_yticklabels() if t.get_text()]


def test_residuals_discrete_budget_colours_and_labelled_axes(many):
    fig = residuals(many)
    bar = _colorbar(fig)
    assert bar.get_ylabel() == "budget C (FLOPs)"
    ticks = _budget_ticks(bar)
    assert 2 <= len(ticks) <= 12  # thinned, each a real budget
    assert all(min(abs(np.log10(t / b)) for b in BUDGETS) < 0.05 for t in ticks)
    n_ax, d_ax = fig.axes[:2]
    assert (
        n_ax.get_xlabel() == "N (total parameters)" and d_ax.get_xlabel() == "D (training tokens)"
    )
    colours = {tuple(c) for c in n_ax.collections[0].get_facecolors().round(6)}
    assert len(colours) == len(BUDGETS)  # one colour per budget, not a continuous scale


def test_isoflop_no_pale_yellow_unit_on_loss_and_short_legend(many):
    fig = isoflop(many)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "final loss (nats/token)"
    legend = ax.get_legend()
    assert len(legend.get_texts()) <= 3  # budgets are on the colour bar, not 24 entries
    for line in ax.lines:
        r, g, b = to_rgb(line.get_color())
        assert not (r > 0.9 and g > 0.85 and b < 0.4), "pale yellow on white is unreadable"
    assert len(_budget_ticks(_colorbar(fig))) <= 12


def test_tokens_per_param_ticks_are_plain_numbers_and_legend_outside(many):
    fig = tokens_per_param(many)
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and all(x.replace(".", "").isdigit() for x in labels)  # "20", not "2x10^1"
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # beside the axes, not over the band


def test_lr_tuning_legend_does_not_cover_points():
    rows = []
    for n, opt in [(1e4, 4e-3), (4e4, 2e-3), (1.6e5, 1.4e-3)]:
        for lr in 1e-3 * 2.0 ** np.arange(-3, 4):
            loss = 2.5 - 0.1 * np.log10(n) + 0.05 * np.log(lr / opt) ** 2
            rows.append({"N": n, "peak_lr": lr, "loss": loss, "tuning": True, "status": "done"})
    fig = lr_tuning_figure(pd.DataFrame(rows))
    fig.canvas.draw()
    for ax in fig.axes:
        box = ax.get_legend().get_window_extent()
        assert box.y1 <= ax.get_window_extent().y0  # below the axes
