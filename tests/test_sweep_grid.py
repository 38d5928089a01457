"""Sweep file validation and the grid solver (pure Python, no JAX)."""

from __future__ import annotations

import itertools
import math
import tomllib
from pathlib import Path

import pytest

from experiments.grid import format_number, ladder_targets, make_run_id, solve_grid
from experiments.plan import fixed_throughput, plan_table
from experiments.status import format_duration
from experiments.sweep_file import SweepError, load_sweep, parse_sweep
from lab.units import PF_DAY_FLOPS

CONFIGS = Path(__file__).resolve().parent.parent / "experiments" / "configs"


def table(**sweep) -> dict:
    base = {
        "sweep": {"budgets_flops": [1e12, 3e12], "sizes_per_budget": 4, "spacing": 1.8},
        "run": {"batch_size": 8},
        "model": {"ctx": 128},
    }
    base["sweep"].update(sweep)
    return base


def test_spend_is_within_one_batch_of_each_budget() -> None:
    spec = parse_sweep(table(min_steps=1))
    grid = solve_grid(spec, vocab_size=259)
    assert len(grid.points) == 8 and not grid.dropped
    for p in grid.points:
        per_token = 6.0 * p.N  # convention 6N, by hand
        assert p.flops_per_token == per_token
        assert p.D % (8 * 128) == 0  # whole batches
        assert p.budget_spent == pytest.approx(per_token * p.D)
        assert abs(p.budget_spent - p.budget) <= per_token * 8 * 128 / 2 + 1e-6
        assert p.steps == p.D // 1024


def test_detailed_convention_solves_d_with_the_detailed_count() -> None:
    spec = parse_sweep(table(flop_convention="detailed", min_steps=1))
    for p in solve_grid(spec, vocab_size=259).points:
        assert p.flops_per_token == p.model.flops_per_token("causal")
        assert p.flops_per_token > 6 * p.N  # attention adds to 6N at ctx 128
        assert abs(p.budget_spent - p.budget) <= p.flops_per_token * 1024 / 2


def test_budgets_in_pf_days_convert_to_flops() -> None:
    spec = parse_sweep(
        {"sweep": {"budgets_pf_days": [1e-8, 2e-8], "sizes_per_budget": 2}, "model": {"ctx": 64}}
    )
    assert spec.budgets == (1e-8 * 8.64e19, 2e-8 * 8.64e19)
    assert PF_DAY_FLOPS == 1e15 * 86400


def test_ladder_is_log_spaced_around_the_guess_and_slides_inside_limits() -> None:
    spec = parse_sweep(table(tokens_per_param_guess=60, sizes_per_budget=5, spacing=2.0))
    targets = ladder_targets(spec, 3.6e11)
    assert targets[2] == pytest.approx(math.sqrt(3.6e11 / 360))  # centre N = sqrt(C / 360)
    assert all(b / a == pytest.approx(2.0) for a, b in itertools.pairwise(targets))
    low = parse_sweep(table(sizes_per_budget=5, spacing=2.0, min_params=2e4))
    assert ladder_targets(low, 3.6e11)[0] == pytest.approx(2e4)  # slid up, still 5 sizes


def test_dropped_points_carry_their_reasons() -> None:
    spec = parse_sweep(table(sizes_per_budget=6, spacing=1.3, min_steps=1900, max_epochs=0.5))

    def memory(model, batch):
        return "over memory: fake limit" if model.d_model >= 96 else None

    grid = solve_grid(spec, vocab_size=259, train_tokens=8_000_000, memory_check=memory)
    reasons = " | ".join(d.reason for d in grid.dropped)
    assert "duplicate" in reasons  # spacing 1.3 is finer than the shape rule's steps
    assert "too few steps" in reasons
    assert "too many epochs" in reasons
    assert "over memory" in reasons
    for p in grid.points:  # what was kept respects every limit
        assert p.steps >= 1900 and p.D / 8_000_000 <= 0.5 and p.model.d_model < 96
    kept = {(p.budget, p.N) for p in grid.points}
    assert len(kept) == len(grid.points)


def test_extra_seeds_go_to_the_sizes_nearest_the_expected_minimum() -> None:
    spec = parse_sweep(table(min_steps=1, extra_seeds_near_minimum=2, seeds=[0]))
    grid = solve_grid(spec, vocab_size=259)
    for budget in spec.budgets:
        points = [p for p in grid.points if p.budget == budget]
        extra = {p.N for p in points if p.extra_seed}
        assert len(extra) == 2 and all(p.seed == 1 for p in points if p.extra_seed)
        center = spec.center_params(budget)
        sizes = sorted({p.N for p in points}, key=lambda n: abs(math.log(n / center)))
        assert extra == set(sizes[:2])


def test_run_ids_are_readable_and_deterministic() -> None:
    assert format_number(3e12) == "3e12" and format_number(91234) == "9.1e4"
    assert make_run_id(3e12, 91234, 0, "abcdef123") == "c3e12_n9.1e4_s0_abcdef"
    spec = parse_sweep(table(min_steps=1))
    first = [p.run_id for p in solve_grid(spec, vocab_size=259).points]
    again = [p.run_id for p in solve_grid(spec, vocab_size=259).points]
    assert first == again and len(set(first)) == len(first)
    other = parse_sweep({**table(min_steps=1), "optimizer": {"peak_lr": 1e-3}})
    assert set(first).isdisjoint(p.run_id for p in solve_grid(other, vocab_size=259).points)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sweep": {"sizes_per_budget": 3}}, "exactly one of budgets_flops"),
        ({"sweep": {"budgets_flops": [1e12], "spacing": 1.0}}, "spacing must be > 1"),
        ({"sweep": {"budgets_flops": [1e12], "flop_convention": "7N"}}, "flop_convention"),
        ({"sweep": {"budgets_flops": [1e12], "sizes": 3}}, "unknown [sweep] key"),
        ({"sweep": {"budgets_flops": [-1.0]}}, "positive numbers"),
        ({"sweep": {"budgets_flops": [1e12]}, "model": {"d_model": 64}}, "ladder chooses"),
        ({"sweep": {"budgets_flops": [1e12]}, "model": {"position": "alibi"}}, "position"),
        ({"sweep": {"budgets_flops": [1e12]}, "run": {"seed": 3}}, "set by the sweep"),
        ({"sweep": {"budgets_flops": [1e12]}, "optimizer": {"lr": 1}}, "unknown OptimizerConfig"),
        ({"sweep": {"budgets_flops": [1e12]}, "data": {"corpus": "nope"}}, "unknown corpus"),
        ({"sweep": {"budgets_flops": [1e12], "seeds": [0], "extra_seeds": [0]}}, "repeat a seed"),
        ({"sweep": {"budgets_flops": [1e12]}, "runs": {}}, "unknown table"),
    ],
)
def test_bad_sweep_files_name_the_key(change: dict, message: str) -> None:
    with pytest.raises(SweepError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_sweep(change)


SWEEP_FILES = sorted(p.stem for p in CONFIGS.glob("*.toml") if "[sweep]" in p.read_text())


@pytest.mark.parametrize("name", SWEEP_FILES)
def test_shipped_sweep_files_are_valid(name: str) -> None:
    spec = load_sweep(name)
    assert spec.budgets and tomllib.loads((CONFIGS / f"{name}.toml").read_text())
    vocab = 259 if spec.template["data"].get("corpus", "stdlib") == "stdlib" else 16
    grid = solve_grid(spec, vocab_size=vocab)
    assert len(grid.points) >= len(spec.budgets)


def test_cpu_presets_meet_the_issue_minimums() -> None:
    tiny = solve_grid(load_sweep("cpu_tiny"), vocab_size=259, train_tokens=10_865_865)
    budgets = {p.budget for p in tiny.points}
    assert len(budgets) >= 3 and all(sum(p.budget == b for p in tiny.points) >= 5 for b in budgets)
    assert all(p.steps >= 200 and p.epochs is not None and p.epochs <= 4 for p in tiny.points)
    study = load_sweep("cpu_study")
    grid = solve_grid(study, vocab_size=259, train_tokens=10_865_865)
    budgets = sorted({p.budget for p in grid.points})
    assert len(budgets) >= 4 and budgets[-1] / budgets[0] >= 10
    assert any(p.extra_seed for p in grid.points)


@pytest.mark.parametrize(
    ("cosine", "branching", "share"),
    [
        ("cpu_study", "cpu_study_branching", (0.75, 0.80)),
        ("cpu_dense", "cpu_dense_branching", (0, 0.5)),
    ],
)
def test_branching_twins_share_the_grid(cosine: str, branching: str, share: tuple) -> None:
    """Each branching preset trains its cosine twin's points (same N, D, seed), and the FLOPs
    it trains follow the grid: cpu_study's cannot reach half (its largest budget holds most of
    the FLOPs), cpu_dense's (9 budgets sqrt(2) apart) does."""
    from experiments.branching import branch_grid

    grids = {
        name: solve_grid(load_sweep(name), vocab_size=259, train_tokens=10_865_865)
        for name in (cosine, branching)
    }
    assert {(p.budget, p.N, p.D, p.seed) for p in grids[cosine].points} == {
        (p.budget, p.N, p.D, p.seed) for p in grids[branching].points
    }
    branched = branch_grid(load_sweep(branching), grids[branching])
    ratio = branched.spent_flops / grids[cosine].spent_flops
    assert share[0] <= ratio <= share[1]


def test_plan_table_lists_points_times_and_dropped_reasons() -> None:
    spec = parse_sweep(table(min_steps=3000))
    grid = solve_grid(spec, vocab_size=259)
    throughput = fixed_throughput(1e10)
    text = plan_table(spec, grid, throughput)
    for p in grid.points:
        assert p.run_id in text
        seconds = throughput.run_seconds(p)
        assert seconds == pytest.approx(p.detailed_flops / 1e10)
    total = sum(p.detailed_flops for p in grid.points) / 1e10
    assert f"estimated {format_duration(total)}" in text
    assert grid.dropped and all(d.reason in text for d in grid.dropped)


def test_measured_step_times_interpolate_in_log_n() -> None:
    from types import SimpleNamespace

    from experiments.plan import Throughput

    rate = Throughput(((1000, 1.0), (10000, 10.0), (100000, 20.0)), 5.0, "test")
    assert rate.step_seconds(SimpleNamespace(N=10**3.5)) == pytest.approx(10**0.5)
    assert rate.step_seconds(SimpleNamespace(N=10**4.5)) == pytest.approx(math.sqrt(200))
    assert rate.run_seconds(SimpleNamespace(N=10000, steps=3)) == pytest.approx(35.0)


def test_batch_rule_gives_each_size_its_own_whole_batches():
    from lab.run_config import ScalingRule

    table = tomllib.loads((CONFIGS / "micro.toml").read_text())
    table["run"]["batch_size"] = 8
    table["run"]["batch_rule"] = {"reference_params": 1e4, "exponent": 0.5}
    table["run"]["batch_multiple"] = 4
    spec = parse_sweep(table)
    grid = solve_grid(spec, vocab_size=16)
    batches = set()
    for point in grid.points:
        n = point.config.model.num_params()
        want = ScalingRule(1e4, 0.5).batch_size(8, n, 4)
        assert point.config.train_batch_size == want
        assert point.config.num_tokens % (want * point.config.model.ctx) == 0
        assert abs(point.budget_spent - point.budget) <= point.flops_per_token * want * 16
        batches.add(want)
    assert len(batches) > 1
