"""Figures: what a reader needs to decode them is on them."""

from __future__ import annotations

from analysis.loading import from_frame
from analysis.pipeline import run_fits
from analysis.plots import residuals
from analysis.synthetic import CHINCHILLA_PUBLISHED, isoflop_grid


def test_residuals_colour_scale_has_a_labelled_colorbar():
    pts = isoflop_grid(CHINCHILLA_PUBLISHED, budgets=(1e18, 1e19, 1e20), noise=0.002, seed=1)
    an = run_fits(from_frame(pts), ("3",), n_boot=0, n_boot_a3=0)
    fig = residuals(an)
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(fig.axes) == 3 and len(bars) == 1
    assert bars[0].get_ylabel() == "C (FLOPs, 6ND)"
