"""The report reads itself: summary first, contents, figures in their sections with captions,
intervals rounded to what they resolve."""

from __future__ import annotations

import re

import numpy as np
import pytest

from analysis.approach3 import compute_optimal, param_array
from analysis.holdout import holdout_largest
from analysis.loading import from_frame
from analysis.pipeline import run_fits
from analysis.report import FIGURES, slug, write_report
from analysis.synthetic import CHINCHILLA_PUBLISHED, isoflop_grid
from analysis.table_format import ci_text, with_ci


@pytest.mark.parametrize(
    ("ci", "text"),
    [
        ([-2.479e-30, 0.4739], "[0.00, 0.47]"),  # the Approach 1 interval
        ([7.834, 30.25], "[8, 30]"),
        ([0.3165, 0.3797], "[0.317, 0.380]"),
        ([3.1e10, 9.7e10], "[3.1e+10, 9.7e+10]"),
        ([1.23e10, 1.31e10], "[1.230e+10, 1.310e+10]"),  # the width, 8.0e8, to 2 digits
        ([2e-5, 3e-5], "[2.0e-05, 3.0e-05]"),
        ([float("nan"), 1.0], "-"),
        (None, "-"),
    ],
)
def test_intervals_rounded_to_their_width(ci, text):
    assert ci_text(ci) == text


def test_value_rounded_like_its_interval():
    assert with_ci(0.51386, [0.4806, 0.5571]) == "0.514 [0.481, 0.557]"
    assert with_ci(19.33, [7.834, 30.25]) == "19 [8, 30]"
    assert with_ci(0.51386, None) == "0.514"
    assert with_ci(0.2531, [0.031, 12.4]) == "0.25 [0, 12]"  # the value keeps 2 digits


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    pts = isoflop_grid(CHINCHILLA_PUBLISHED, budgets=(1e18, 1e19, 1e20, 1e21), noise=0.002, seed=1)
    an = run_fits(from_frame(pts, source="synthetic"), ("2", "3"), n_boot=50, n_boot_a3=200)
    out = tmp_path_factory.mktemp("report")
    write_report(an, out, holdout_largest(an.dataset.points))
    return an, (out / "report.md").read_text(), (out / "report.html").read_text()


def test_summary_first_with_the_answer(report):
    an, md, html = report
    headings = re.findall(r"^## (.+)$", md, flags=re.M)
    assert headings[:2] == ["Summary", "Contents"]
    assert md.startswith("# Scaling-law report: synthetic")
    summary = md.split("## Summary")[1].split("## Contents")[0]
    f = an.approach3
    assert f"a = {with_ci(f.a, f.ci['a'])}" in summary
    # Tokens per parameter at the largest budget, with the interval, as the fit says.
    t = f.tokens_per_param(max(an.at))
    assert with_ci(t["value"], t["ci"]) in summary
    assert "held-out check" in summary and "Approach 3 predicts its optimal loss" in summary
    # The plan at the largest budget: the true optimum of the synthetic surface.
    n_true, _ = compute_optimal(param_array(CHINCHILLA_PUBLISHED), np.array(1e21))
    (plan,) = re.findall(
        r"plan at the largest budget \| at C = 1e\+21 FLOPs .*?N = ([0-9.e+]+)", md
    )
    assert float(plan) == pytest.approx(float(n_true), rel=0.1)
    assert html.index("id='summary'") < html.index("<nav>") < html.index("<section>")


def test_contents_link_every_section(report):
    _, md, html = report
    contents = md.split("## Contents")[1].split("\n## ")[0]
    links = re.findall(r"- \[(.+)\]\(#(.+)\)", contents)
    sections = re.findall(r"^## (.+)$", md, flags=re.M)[2:]
    assert [t for t, _ in links] == sections and all(slug(t) == s for t, s in links)
    for _, anchor in links:
        assert f"id='{anchor}'" in html


def test_figures_sit_in_their_sections_with_captions(report):
    _, md, html = report
    blocks = dict((b.split("\n", 1)[0], b) for b in re.split(r"^## ", md, flags=re.M)[1:])
    placed = {}
    for title, block in blocks.items():
        for name in re.findall(r"!\[(\w+)\]\(figures/\w+\.png\)", block):
            placed[name] = title
            assert f"*Figure: {FIGURES[name][1]}*" in block
    assert set(placed) == {
        "loss_vs_compute",
        "isoflop",
        "optimal_allocation",
        "tokens_per_param",
        "residuals",
    }
    for name, title in placed.items():
        assert title.startswith(FIGURES[name][0])
    assert "Other figures" not in md and "<figcaption>" in html
    assert html.count("<figcaption>") == len(placed)
