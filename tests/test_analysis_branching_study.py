"""The cosine-vs-branching comparison on made-up tables with a known answer (no JAX): run
directories written by hand, their costs.csv by `experiments.run_costs` (as `sweep export`
writes it), then `analysis.branching_study` reads the plain tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.branching_study import compare, grid_flop_share, main
from experiments.run_costs import COSTS_FILE, cost_rows, costs_csv


def sweep_table(path, shift: float, branching: bool) -> None:
    """3 budgets x 5 sizes from L = 1.7 + 400/N^0.34 + 400/D^0.34 (a = b = 0.5), plus a
    second seed at one size per budget; `shift` nats added by seed (seed noise)."""
    rows = []
    for budget in (1e12, 4e12, 1.6e13):
        n_opt = np.sqrt(budget / 6)  # A = B and equal exponents: N_opt = D_opt
        for k, factor in enumerate((0.25, 0.5, 1.0, 2.0, 4.0)):
            N = n_opt * factor
            D = budget / (6 * N)
            for seed in (0, 1) if k == 2 else (0,):
                loss = 1.7 + 400 / N**0.34 + 400 / D**0.34 + shift * seed
                rows.append(
                    {
                        "run_id": f"c{budget:.0e}_{k}_s{seed}",
                        "budget": budget,
                        "N": N,
                        "D": D,
                        "C_6N": 6 * N * D,
                        "loss": loss,
                        "status": "done",
                        "seed": seed,
                        "tuning": False,
                        "budget_spent": 6 * N * D,
                        "wall_time_s": 10.0,
                    }
                )
    path.mkdir()
    pd.DataFrame(rows).to_csv(path / "results.csv", index=False)
    total = sum(r["budget_spent"] for r in rows)
    records = [(r["run_id"], "branch" if branching else "run", r["budget_spent"]) for r in rows]
    if branching:  # the points cost a quarter of C, one trunk the rest of 40%
        records = [(i, role, c * 0.25) for i, role, c in records]
        records.append(("trunk_x_to100", "trunk", total * 0.15))
    for k, (run_id, role, work) in enumerate(records):
        run = path / "runs" / run_id
        run.mkdir(parents=True)
        C = next((r["budget_spent"] for r in rows if r["run_id"] == run_id), 0.0)
        point = {"run_id": run_id, "N": 1e5, "budget_spent": C, "work_flops": work}
        point |= {"role": role, "tuning": False, "steps": 100}
        (run / "sweep_point.json").write_text(json.dumps(point))
        finished = f"2026-12-06T09:{k:02d}:00+00:00"
        result = {"timing": {"total_s": 30.0}, "provenance": {"finished_at": finished}}
        (run / "result.json").write_text(json.dumps(result))
    (path / "runs" / "unfinished").mkdir()  # no result.json: not in the ledger
    (path / COSTS_FILE).write_bytes(costs_csv(cost_rows(path)))


def test_same_surface_gives_the_same_frontier_and_the_flop_share(tmp_path) -> None:
    sweep_table(tmp_path / "cosine", 0.02, branching=False)
    sweep_table(tmp_path / "branching", 0.02, branching=True)
    doc = compare(tmp_path / "cosine", tmp_path / "branching", n_boot=50)
    assert doc["shared_points"] == 18
    assert doc["difference"]["max_abs"] == pytest.approx(0.0, abs=1e-9)
    assert doc["seed_noise"]["median_abs"] == pytest.approx(0.02)
    fits = doc["fits"]
    assert fits["cosine"]["a"] == pytest.approx(0.5, abs=0.02)
    assert fits["branching"]["a"] == pytest.approx(fits["cosine"]["a"])
    assert doc["verdict"]["a_within_tolerance"] and doc["verdict"]["flop_share"] == pytest.approx(
        0.4
    )
    assert doc["verdict"]["flop_share_met"]
    cosine, branched = doc["cost"]["cosine"], doc["cost"]["branching"]
    assert branched["flops_C"] == pytest.approx(cosine["flops_C"])  # the trunk is no point
    assert (cosine["job_seconds"], branched["job_seconds"]) == (18 * 30.0, 19 * 30.0)
    assert cosine["span_seconds"] == 17 * 60 + 30  # first start to last finish
    assert (
        main(
            [
                str(tmp_path / "cosine"),
                str(tmp_path / "branching"),
                "--out",
                str(tmp_path / "o"),
                "--bootstrap",
                "20",
            ]
        )
        == 0
    )
    report = (tmp_path / "o" / "report.md").read_text()
    assert report.startswith("# cosine (cosine) vs branching (WSD")  # no sweep.toml: folders
    assert (
        "= 40.0% (met: <= 50%)" in report and report.count("| 1e+12 |") == 6 + 1
    )  # 6 shared points, 1 tokens/param row


def test_a_folder_without_costs_is_refused_in_one_line(tmp_path) -> None:
    sweep_table(tmp_path / "cosine", 0.02, branching=False)
    sweep_table(tmp_path / "branching", 0.02, branching=True)
    (tmp_path / "branching" / COSTS_FILE).unlink()
    with pytest.raises(SystemExit, match=r"has no costs\.csv; export the sweep first"):
        compare(tmp_path / "cosine", tmp_path / "branching", n_boot=10)


def test_grid_flop_share_is_the_trunk_arithmetic() -> None:
    """Trunk (N=1, seed 0) with D = 1, 2, 4 and trunk (N=10, seed 0) with D = 3 alone: at
    f = 0.2 branching costs 0.8 x 4 + 0.2 x 7 = 4.6 and 10 x 3 = 30 (a lone point gains
    nothing) against 7 + 30 = 37 as one run per point."""
    points = pd.DataFrame({"N": [1, 1, 1, 10], "D": [1, 2, 4, 3], "seed": [0, 0, 0, 0]})
    assert grid_flop_share(points, 0.2) == pytest.approx((4.6 + 30) / 37)
    assert grid_flop_share(points, 0.0) == pytest.approx((4 + 30) / 37)
    seeds = points.assign(seed=[0, 1, 0, 0])  # seed 1 (D = 2) is its own trunk
    assert grid_flop_share(seeds, 0.0) == pytest.approx((4 + 2 + 30) / 37)
