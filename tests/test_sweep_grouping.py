"""The runner groups runs of one shape (the `micro` sweep's sizes are below the measured
threshold), records the group in each member's provenance, and `sweep verify` re-runs the
group the way it was trained, bitwise; the [packing] table's errors and `sweep plan`'s
packing section."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments import sweep_dir
from experiments.grouping import plan_lines
from experiments.options import RunnerOptions
from experiments.packing_spec import (
    MEASURED_GROUP_MAX_PARAMS,
    MEASURED_SOURCE,
    PackingError,
    parse_packing,
)
from experiments.runner import run_sweep
from experiments.sweep_file import load_sweep
from experiments.verify import verify_run

REPO = Path(__file__).resolve().parent.parent
MICRO = (REPO / "experiments" / "configs" / "micro.toml").read_text()
OPTIONS = RunnerOptions(jobs=1, progress=False, compilation_cache=None, heartbeat_s=1.0)


@pytest.mark.slow
def test_the_runner_groups_runs_of_one_shape_and_verify_rebuilds_the_group(tmp_path):
    sweep_file = tmp_path / "micro.toml"
    sweep_file.write_text(MICRO + '\n[packing]\ngroup = "always"\nmax_group_size = 3\n')
    out = tmp_path / "out"
    report = run_sweep(str(sweep_file), str(out), OPTIONS)
    assert report.exit_code == 0 and len(report.trained) == 6
    points = {p["run_id"]: p for p in sweep_dir.read_plan(out)["points"]}
    groups = {}
    for run_id in points:
        group = sweep_dir.read_result(out, run_id)["provenance"].get("group")
        if group:
            groups.setdefault(tuple(group["run_ids"]), []).append((run_id, group))
    assert groups, "no run of micro was grouped"
    for run_ids, members in groups.items():
        assert 2 <= len(run_ids) <= 3 and sorted(r for r, _ in members) == sorted(run_ids)
        assert len({points[r]["N"] for r in run_ids}) == 1  # one shape per group
        for run_id, group in members:
            assert group["run_ids"][group["index"]] == run_id
            assert group["threshold_params"] is None  # no limit: "always"
            assert group["threshold_source"] == "[packing] group = always"
    # members of one group differ in length (budgets) or seed: each its own run
    run_ids = next(iter(groups))
    results = [sweep_dir.read_result(out, r) for r in run_ids]
    assert len({(r["steps"], r["config"]["seed"]) for r in results}) == len(run_ids)

    check = verify_run(out, run_ids[-1])
    assert check.ok and check.tolerance == 0.0 and check.diff == 0.0, check
    assert check.max_curve_diff == 0.0
    assert sorted(p.name for p in (out / "verify" / f"{run_ids[-1]}.group").iterdir()) == sorted(
        run_ids
    )


def test_the_measured_threshold_groups_nothing_on_this_cpu():
    spec = parse_packing(None)
    assert (
        spec.threshold() == (MEASURED_GROUP_MAX_PARAMS, MEASURED_SOURCE) == (0.0, MEASURED_SOURCE)
    )


def test_packing_table_errors_name_the_key():
    with pytest.raises(PackingError, match=r"unknown \[packing\] key\(s\) \['grup'\]"):
        parse_packing({"grup": "auto"})
    with pytest.raises(PackingError, match="group must be one of"):
        parse_packing({"group": "sometimes"})
    with pytest.raises(PackingError, match="devices_per_run must be"):
        parse_packing({"devices_per_run": {"1e5": 0}})
    spec = parse_packing({"devices_per_run": {"1e6": 4, "1e5": 2}, "group": "never"})
    assert spec.devices_for(5e4, total=8, batch=8) == 2
    assert spec.devices_for(5e5, total=8, batch=8) == 4
    assert spec.devices_for(5e6, total=8, batch=8) == 8
    assert spec.threshold() == (0.0, "[packing] group = never")


def test_sweep_plan_shows_the_groups_and_the_devices(tmp_path):
    from experiments.context import build_grid

    sweep_file = tmp_path / "micro.toml"
    sweep_file.write_text(
        MICRO + '\n[packing]\ndevices_per_run = "rule"\nparams_per_device = 1e3\n'
        "group_max_params = 1e5\n"
    )
    spec = load_sweep(sweep_file)
    grid, _ = build_grid(spec, check_memory=False)
    text = "\n".join(plan_lines(spec.packing, list(grid.points), total_devices=8))
    n_small, n_large = sorted({p.N for p in grid.points})
    runs = {n: sum(p.N == n for p in grid.points) for n in (n_small, n_large)}
    assert "N <= 1e+05, from [packing] group_max_params" in text
    lines = text.splitlines()
    for n in (n_small, n_large):
        devices = 1
        while devices < n / 1e3 and devices * 2 <= 8:
            devices *= 2
        assert any(
            line.split()[1:] == [str(runs[n]), "1", "0", str(devices), str(8 // devices)]
            for line in lines[2:]
            if len(line.split()) == 6
        ), (n, devices, text)
    assert f"{len(grid.points)} of {len(grid.points)} runs train in 2 groups" in text
