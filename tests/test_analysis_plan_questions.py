"""The planner's questions, each against values computed by hand (or by an independent method)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis import repetition, surface
from analysis.plan_constrained import constrained_optimal, constrained_plan
from analysis.plan_inverse import for_loss, for_model_size, for_tokens, place
from analysis.plan_sources import PlanSource, from_fit_file, published
from analysis.planner import SCHEMA_VERSION, extrapolation, plan

# Hoffmann et al.'s published Approach 3, by hand
E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28
G = (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA))
HOFFMANN = PlanSource(
    "hoffmann", params=np.array([E, A, B, ALPHA, BETA]), compute_range=(1e18, 1e22)
)


def hand_loss(n: float, d: float) -> float:
    return E + A / n**ALPHA + B / d**BETA


def test_extrapolation_distance_and_warning():
    assert extrapolation(1e20, (1e18, 1e22)) == {
        "decades_beyond_data": 0.0,
        "fit_compute_range": [1e18, 1e22],
        "warning": None,
    }
    far = extrapolation(1e30, (1e18, 1e22))
    assert far["decades_beyond_data"] == pytest.approx(8.0)
    assert "8.0 decades of compute above" in far["warning"]
    assert extrapolation(1e16, (1e18, 1e22))["warning"] is None  # exactly 2 decades: no warning
    below = extrapolation(1e15, (1e18, 1e22))
    assert below["decades_beyond_data"] == pytest.approx(3.0) and "below" in below["warning"]
    assert extrapolation(1e20, None)["decades_beyond_data"] is None
    assert plan(1e30, HOFFMANN)["extrapolation"]["decades_beyond_data"] == pytest.approx(8.0)


def test_fixed_model_size_by_hand():
    N = 7e9
    D = (N / G) ** (ALPHA / BETA) / G
    out = for_model_size(N, HOFFMANN)
    assert out["D"] == pytest.approx(D, rel=1e-12)
    assert out["C"] == pytest.approx(6 * N * D, rel=1e-12)
    assert out["loss"] == pytest.approx(hand_loss(N, D), rel=1e-12)
    assert plan(out["C"], HOFFMANN)["N_opt"] == pytest.approx(N, rel=1e-10)  # round trip


def test_fixed_tokens_by_hand():
    D = 1.4e12
    N = G * (G * D) ** (BETA / ALPHA)
    out = for_tokens(D, HOFFMANN)
    assert out["N"] == pytest.approx(N, rel=1e-12)
    assert out["C"] == pytest.approx(6 * N * D, rel=1e-12)


def test_target_loss_by_hand_is_the_cheapest_budget():
    target = 2.0
    N = (A * (1 + ALPHA / BETA) / (target - E)) ** (1 / ALPHA)
    out = for_loss(target, HOFFMANN)
    assert out["N"] == pytest.approx(N, rel=1e-12)
    assert out["loss"] == pytest.approx(target, rel=1e-12)
    # the frontier at that budget has exactly this loss; 1% less compute falls short
    assert plan(out["C"], HOFFMANN)["loss"] == pytest.approx(target, rel=1e-10)
    assert plan(0.99 * out["C"], HOFFMANN)["loss"] > target


def test_target_loss_below_e_is_refused():
    from analysis.errors import AnalysisError

    with pytest.raises(AnalysisError, match=r"irreducible loss E = 1\.69"):
        for_loss(1.5, HOFFMANN)


def test_published_allocation_laws_by_hand():
    """Hoffmann et al.'s Approach 1 (a = b = 0.5) through Chinchilla (70B, 1.4T at 5.88e23)."""
    src = published("hoffmann-a1")
    out = plan(5.88e21, src)
    assert out["N_opt"] == pytest.approx(70e9 * 0.1, rel=1e-12)
    assert out["D_opt"] == pytest.approx(5.88e23 / (6 * 70e9) * 0.1, rel=1e-12)
    assert "loss" not in out
    size = for_model_size(7e9, src)
    assert size["C"] == pytest.approx(6 * 7e9 * 1.4e11, rel=1e-10)
    a2 = plan(5.88e21, published("hoffmann-a2"))
    assert a2["N_opt"] == pytest.approx(70e9 * 0.01**0.49, rel=1e-12)
    from analysis.errors import AnalysisError

    with pytest.raises(AnalysisError, match="surface"):
        for_loss(2.0, src)


def test_placement_of_bloomberggpt_by_hand():
    N, D = 50.6e9, 569e9
    out = place(N, D, HOFFMANN)
    assert out["C"] == pytest.approx(6 * N * D) and out["tokens_per_param"] == pytest.approx(D / N)
    n_opt = G * (6 * N * D / 6) ** (BETA / (ALPHA + BETA))
    assert out["optimum_at_C"]["N_opt"] == pytest.approx(n_opt, rel=1e-12)
    assert out["loss"] == pytest.approx(hand_loss(N, D), rel=1e-12)
    assert out["excess_loss"] > 0 and 0 < out["compute_efficiency"] < 1
    # the optimum at the compute-equivalent budget reaches exactly BloombergGPT's loss
    assert plan(out["compute_equivalent"], HOFFMANN)["loss"] == pytest.approx(out["loss"])


def test_data_constrained_matches_muennighoff_grid_search():
    """Their README: a 8.67B / 178B-token model on 25B unique tokens is better spent as
    ~6.8B parameters on ~227B tokens (9.1 epochs), by grid search along N D = const."""
    _, p7 = repetition.published()
    best = constrained_optimal(p7, 6 * 8.67e9 * 178e9, 25e9)
    assert best["N"] == pytest.approx(6.8e9, rel=0.01)
    assert best["D"] == pytest.approx(227e9, rel=0.01)
    assert best["epochs"] == pytest.approx(9.1, rel=0.01)
    grid = np.linspace(0.3, 1.0, 2001) * 8.67e9  # independent: brute force along the budget
    losses = repetition.loss(p7, grid, 8.67e9 * 178e9 / grid, 25e9)
    assert best["loss"] <= losses.min() + 1e-12


def test_data_constrained_without_scarcity_is_the_unlimited_plan():
    out = constrained_plan(1e22, 1e15, HOFFMANN)
    free = plan(1e22, HOFFMANN)
    assert not out["binding"]
    assert out["N"] == pytest.approx(free["N_opt"], rel=1e-5)
    assert out["loss_cost"] == pytest.approx(0.0, abs=1e-10)
    scarce = constrained_plan(1e22, free["D_opt"] / 8, HOFFMANN)
    assert scarce["binding"] and scarce["loss_cost"] > 0 and scarce["N"] > 0
    assert scarce["R_D_star"] == pytest.approx(15.387756)
    assert scarce["epochs"] == pytest.approx(scarce["D"] / (free["D_opt"] / 8))


def test_flop_convention_of_a_fit_file_sets_the_allocation(tmp_path):
    doc = {
        "source": "t",
        "conventions": {"params": "total", "flops": "detailed"},
        "approach3": {
            **dict(zip(surface.PARAM_NAMES, (E, A, B, ALPHA, BETA), strict=True)),
            "diagnostics": {"flops_per_param_token": 7.5, "compute_range": [1e17, 1e20]},
        },
    }
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(doc))
    src = from_fit_file(path)
    out = plan(1e21, src)
    assert src.flops_per_param_token == 7.5 and src.compute_range == (1e17, 1e20)
    assert 7.5 * out["N_opt"] * out["D_opt"] == pytest.approx(1e21)
    assert out["N_opt"] == pytest.approx(G * (1e21 / 7.5) ** (BETA / (ALPHA + BETA)))
    assert out["extrapolation"]["decades_beyond_data"] == pytest.approx(1.0)


def test_plan_from_an_approach2_fit_file(tmp_path):
    budgets = [1e18, 1e19, 1e20]
    rows = [
        {"budget": c, "N_opt": 0.02 * c**0.5, "D_opt": 8.0 * c**0.5, "in_frontier": True}
        for c in budgets
    ]
    path = tmp_path / "fit.json"
    path.write_text(json.dumps({"approach2": {"a": 0.5, "b": 0.5, "budgets": rows}}))
    src = from_fit_file(path)
    out = plan(1e22, src)
    assert out["N_opt"] == pytest.approx(0.02 * 1e11) and out["D_opt"] == pytest.approx(8e11)
    assert out["extrapolation"]["decades_beyond_data"] == pytest.approx(2.0)
    assert for_tokens(8e11, src)["C"] == pytest.approx(1e22 * 6 * 2e9 * 8e11 / 1e22)


def test_cli_json_schema_and_one_question(capsys):
    from experiments.main import main

    assert main(["plan", "--target-loss", "2.0", "--use", "hoffmann", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema_version"] == SCHEMA_VERSION == 1
    assert doc["question"] == "target_loss" and doc["loss"] == pytest.approx(2.0)
    assert main(["plan", "--budget", "1e22", "--target-loss", "2"]) == 2
    assert "ask one question" in capsys.readouterr().err
    assert main(["plan", "--model-size", "7e9", "--unique-tokens", "1e9"]) == 2
    assert "--unique-tokens goes with" in capsys.readouterr().err
    args = ["plan", "--model-size", "50.6e9", "--tokens", "569e9", "--unique-tokens", "569e9"]
    assert main([*args, "--use", "hoffmann"]) == 0
    text = capsys.readouterr().out
    assert "the optimum at this budget" in text and "unique tokens (1.00 epochs" in text


def test_bloomberggpt_numbers_in_plan_help_are_what_the_planner_says():
    from analysis.plan_command import PLAN_EPILOG
    from analysis.plan_constrained import constrained_placement
    from analysis.reference import get_reference, parametric_array

    src = PlanSource("besiroglu", params=parametric_array(get_reference("besiroglu")))
    placed = place(50.6e9, 569e9, src)
    dc = constrained_placement(50.6e9, 569e9, 569e9, src)
    budget = constrained_plan(2.4e23, 569e9, src)
    shown = [
        f"{placed['C'] / 1e23:.2f}e23 FLOPs",
        f"{placed['optimum_at_C']['N_opt'] / 1e9:.1f}B params on "
        f"{placed['optimum_at_C']['D_opt'] / 1e9:.0f}B",
        f"{100 * placed['compute_efficiency']:.1f}% of its compute",
        f"{dc['optimum']['N'] / 1e9:.1f}B params for {dc['optimum']['epochs']:.2f} epochs",
        f"loss {dc['optimum']['loss']:.4f} vs {dc['loss']:.4f}",
        f"{budget['N'] / 1e9:.1f}B params for {budget['epochs']:.2f} epochs",
        f"{budget['unlimited']['N_opt'] / 1e9:.1f}B params on "
        f"{budget['unlimited']['D_opt'] / 1e9:.0f}B tokens",
    ]
    text = " ".join(PLAN_EPILOG.split())
    for s in shown:
        assert s in text, s
