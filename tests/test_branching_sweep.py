"""Branching sweeps: the layout (trunk segments, branches, FLOPs), a sweep run end to end,
SIGKILL during a trunk and during a branch, and two workers sharing one directory.

The sweep is `micro` with three budgets and a WSD schedule: 2 trunks (370 and 97 steps, cut
at their branches' starts) and 6 cooldown branches, a few seconds of training. The killed and
two-worker sweeps run as subprocesses with one CPU device, like the reference they are
compared with bitwise.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis import branching_study
from analysis.loading import load_sweep_dir
from experiments.branch_plan import branch_plan_lines
from experiments.branching import TRUNK_PREFIX, branch_grid
from experiments.export import export_sweep
from experiments.grid import solve_grid
from experiments.options import RunnerOptions
from experiments.plan import fixed_throughput
from experiments.results import COOLDOWNS_PREFIX, read_csv
from experiments.run_costs import cost_rows
from experiments.runner import run_sweep
from experiments.sweep_dir import read_plan
from experiments.sweep_file import SweepError, load_sweep, parse_sweep
from lab.errors import ConfigError
from lab.train import train

REPO = Path(__file__).resolve().parent.parent
MICRO = (REPO / "experiments" / "configs" / "micro.toml").read_text()
OPTIONS = RunnerOptions(jobs=1, progress=False, compilation_cache=None, heartbeat_s=1.0)


def branching_sweep(tmp_path: Path, budgets: str = "[3e8, 6e8, 1.2e9]") -> Path:
    text = MICRO.replace(
        "budgets_flops = [3e8, 6e8]", f'budgets_flops = {budgets}\nstrategy = "branching"'
    )
    text = text.replace("extra_seeds_near_minimum = 1", "extra_seeds_near_minimum = 0")
    text = text.replace(
        "[data]",
        '[optimizer]\nschedule = "wsd"\ncooldown_fraction = 0.2\nwarmup_steps = 0.05\n\n[data]',
    )
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


def test_layout_keeps_every_point_and_counts_the_flops(tmp_path) -> None:
    spec = load_sweep(branching_sweep(tmp_path))
    grid = solve_grid(spec, vocab_size=16, train_tokens=10**6)
    branched = branch_grid(spec, grid)
    trunks = [p for p in branched.points if p.role == "trunk"]
    branches = [p for p in branched.points if p.role == "branch"]
    assert len(branches) == len(grid.points) == 6 and len(trunks) == 6  # 3 starts x 2 sizes
    by_id = branched.by_id()
    shortest = {
        n: min(p.steps for p in grid.points if p.N == n) for n in {p.N for p in grid.points}
    }
    for alone, branch in zip(grid.points, branches, strict=True):
        # the standalone run's N, D and C; the warmup in steps (0.05 of its size's shortest run)
        assert (branch.N, branch.D, branch.budget_spent) == (alone.N, alone.D, alone.budget_spent)
        warmup = round(0.05 * shortest[alone.N])
        assert branch.config == dataclasses.replace(
            alone.config,
            optimizer=dataclasses.replace(alone.config.optimizer, warmup_steps=warmup),
        )
        steps = branch.steps
        assert branch.start_step == steps - round(0.2 * steps)
        parent = by_id[branch.parent]
        assert parent.role == "trunk" and parent.steps == branch.start_step
        assert parent.trunk == branch.trunk and parent.config.optimizer.cooldown_fraction == 0
    for segment in trunks:  # a chain per trunk, each from the previous one's end
        if segment.parent is None:
            assert segment.start_step == 0
        else:
            assert by_id[segment.parent].steps == segment.start_step
    per_step = {p.trunk: p.flops_per_token * p.config.tokens_per_step for p in trunks}
    trunk_flops = sum(per_step[p.trunk] * p.work_steps for p in trunks)
    cooldowns = sum(per_step[p.trunk] * (p.steps - p.start_step) for p in branches)
    assert branched.spent_flops == pytest.approx(trunk_flops + cooldowns)
    assert sum(p.spent for p in branches) == pytest.approx(trunk_flops + cooldowns)
    assert branched.total_flops == grid.total_flops  # the study's C, as standalone runs

    # `sweep plan`: the trunks with their kept checkpoints, every branch, the FLOPs saved
    text = "\n".join(branch_plan_lines(spec, grid, branched, fixed_throughput(1e10)))
    share = branched.spent_flops / grid.total_flops
    assert f"= {share:.1%} ({1 - share:.1%} saved)" in text and 0.5 < share < 0.8
    for trunk in {p.trunk for p in trunks}:
        ends = ", ".join(str(p.steps) for p in trunks if p.trunk == trunk)
        assert any(trunk in line and line.endswith(ends) for line in text.splitlines())
    assert all(p.run_id in text for p in branches)


def test_branching_needs_a_wsd_schedule_with_a_cooldown(tmp_path) -> None:
    import tomllib

    table = tomllib.loads(branching_sweep(tmp_path).read_text())
    table["optimizer"]["schedule"] = "cosine"
    with pytest.raises(SweepError, match='schedule = "wsd"'):
        parse_sweep(table)
    table["sweep"]["strategy"] = "forked"
    with pytest.raises(SweepError, match="strategy 'forked' is unknown"):
        parse_sweep(table)


def test_sweep_trains_branches_equal_to_standalone_runs(tmp_path) -> None:
    """In-process run: the tables hold one row per point (C of the standalone run, FLOPs
    spent), trunk and cooldown curves; a branch equals its standalone run bitwise."""
    out = tmp_path / "out"
    report = run_sweep(str(branching_sweep(tmp_path, "[3e8, 6e8]")), str(out), OPTIONS)
    assert report.exit_code == 0 and len(report.trained) == 8  # 4 segments, 4 branches
    plan = {p["run_id"]: p for p in read_plan(out)["points"]}
    rows = read_csv(out / "results.csv")
    assert sorted(r["run_id"] for r in rows) == sorted(
        k for k, p in plan.items() if p["role"] == "branch"
    )
    for row in rows:
        point = plan[row["run_id"]]
        assert float(row["C_6N"]) == pytest.approx(6 * point["N"] * point["D"])
        assert float(row["flops_spent"]) == pytest.approx(point["flops_spent"])
        assert float(row["flops_spent"]) < float(row["budget_spent"])
        assert int(row["start_step"]) == point["start_step"] > 0
    total_spent = sum(float(r["flops_spent"]) for r in rows)
    assert total_spent == pytest.approx(sum(p["work_flops"] for p in plan.values()))
    # the ledger (costs.csv, every run directory): trunk segments' FLOPs are in it, and the
    # branches' trunk shares add up to them; the comparison reads it from the exported folder
    ledger = cost_rows(out)
    assert sorted(r["role"] for r in ledger) == ["branch"] * 4 + ["trunk"] * 4
    assert sum(r["work_flops"] for r in ledger) == pytest.approx(total_spent)
    export_sweep(out, tmp_path / "data")
    cost = branching_study.cost(tmp_path / "data")
    assert cost["flops_spent"] == pytest.approx(total_spent)
    assert cost["flops_C"] == pytest.approx(sum(float(r["budget_spent"]) for r in rows))
    assert cost["job_seconds"] == pytest.approx(sum(r["total_s"] for r in ledger))
    segment = out / "runs" / next(r["run_id"] for r in ledger if r["role"] == "trunk")
    (segment / "result.json").rename(segment / "result.json.aside")  # a segment unfinished
    with pytest.raises(ConfigError, match=r"1 of 8 planned runs have no result yet"):
        export_sweep(out, tmp_path / "data2")
    (segment / "result.json.aside").rename(segment / "result.json")
    curves = read_csv(out / "curves.csv")
    ids = {r["run_id"] for r in curves}
    assert {i for i in ids if i.startswith(TRUNK_PREFIX)} == {p["trunk"] for p in plan.values()}
    cooled = [r for r in curves if r["run_id"].startswith(COOLDOWNS_PREFIX)]
    assert sorted(float(r["loss"]) for r in cooled) == sorted(float(r["loss"]) for r in rows)

    # Approach 1's curves (analysis, JAX-free): per trunk, its branches' cooled-down losses;
    # the trunks' stable-LR curves are in curves.csv, evaluated up to each trunk's end, but
    # not in the analysis (unannealed), and the trunk segments are no points of the study
    ds = load_sweep_dir(out)
    assert sorted(ds.points["run_id"]) == sorted(r["run_id"] for r in rows)
    trunk_ids = {p["trunk"] for p in plan.values()}
    assert set(ds.curves["run_id"]) == {COOLDOWNS_PREFIX + t for t in trunk_ids}
    for trunk in trunk_ids:
        stable = [r for r in curves if r["run_id"] == trunk]
        ends = [p["steps"] for p in plan.values() if p["trunk"] == trunk and p["role"] == "trunk"]
        assert max(int(r["step"]) for r in stable) == max(ends)

    from lab.run_config import RunConfig

    longest = max(rows, key=lambda r: int(r["steps"]))
    config = RunConfig.from_dict(
        json.loads((out / "runs" / longest["run_id"] / "config.json").read_text())
    )
    alone = train(config, tmp_path / "alone", progress=False, compilation_cache=None)
    assert repr(alone["loss"]) == longest["loss"]  # bitwise, through trunk segments and seeding


# ---- subprocess sweeps (one CPU device each): kill -9 and two workers ---------------------


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out["JAX_PLATFORMS"] = "cpu"
    return out


def sweep(sweep_file: Path, out: Path, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "experiments.main", "sweep", "run", str(sweep_file)]
    command += ["--out", str(out), "--no-progress", "--compilation-cache", "none", *args]
    if "--jobs" not in args:
        command += ["--jobs", "1"]
    return subprocess.Popen(
        command, cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(process: subprocess.Popen, timeout: float = 300) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


def trained(output: str) -> list[str]:
    return [line.split()[2] for line in output.splitlines() if line.startswith("[w")]


def losses(out: Path) -> dict[str, str]:
    return {r["run_id"]: r["loss"] for r in read_csv(out / "results.csv")}


def curve_losses(out: Path) -> list[tuple[str, str, str]]:
    return sorted((r["run_id"], r["step"], r["loss"]) for r in read_csv(out / "curves.csv"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("reference")
    file = branching_sweep(root)
    finish(sweep(file, root / "out"))
    return file, root / "out"


def kill_when(runner: subprocess.Popen, out: Path, prefix: str, lines: int) -> str:
    """SIGKILL the runner once a run whose id starts with `prefix` has logged `lines` steps
    (past a checkpoint) without finishing; the run's id."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and runner.poll() is None:
        for run in (out / "runs").glob(f"{prefix}*") if (out / "runs").exists() else []:
            metrics = run / "metrics.jsonl"
            count = len(metrics.read_text().splitlines()) if metrics.exists() else 0
            if count >= lines and not (run / "result.json").exists():
                os.kill(runner.pid, signal.SIGKILL)
                runner.communicate()
                return run.name
        time.sleep(0.02)
    runner.communicate()
    raise AssertionError(f"the runner finished before a {prefix}* run could be killed")


@pytest.mark.slow
def test_sigkill_in_a_trunk_and_in_a_branch_then_equal_to_uninterrupted(reference) -> None:
    file, done = reference
    out = done.parent / "killed"
    in_trunk = kill_when(sweep(file, out), out, TRUNK_PREFIX, 50)  # past the step-40 save
    in_branch = kill_when(sweep(file, out), out, "c", 25)
    assert in_trunk.startswith(TRUNK_PREFIX) and not in_branch.startswith(TRUNK_PREFIX)
    finished_before = {p.parent.name for p in (out / "runs").glob("*/result.json")}
    last = trained(finish(sweep(file, out)))
    everything = {p["run_id"] for p in read_plan(out)["points"]}
    assert sorted(last) == sorted(everything - finished_before)  # each point trained once
    for run in (out / "runs").iterdir():  # every step logged exactly once, resumes included
        point = json.loads((run / "sweep_point.json").read_text())
        steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").open()]
        assert steps == list(range(point["start_step"] + 1, point["steps"] + 1)), run.name
    assert losses(out) == losses(done)  # bitwise equal to the uninterrupted sweep
    assert curve_losses(out) == curve_losses(done)


@pytest.mark.slow
def test_two_workers_share_one_branching_sweep(reference) -> None:
    file, done = reference
    out = done.parent / "shared"
    common = ("--workers", "2")
    first = sweep(file, out, *common, "--worker", "0")
    second = sweep(file, out, *common, "--worker", "1")
    runs = [trained(finish(first)), trained(finish(second))]
    everything = {p["run_id"] for p in read_plan(out)["points"]}
    assert set(runs[0]).isdisjoint(runs[1]) and runs[0] and runs[1]
    assert sorted(runs[0] + runs[1]) == sorted(everything)
    assert not list((out / "claims").glob("*.json"))
    assert losses(out) == losses(done)
    assert curve_losses(out) == curve_losses(done)


def test_ray_executor_refuses_a_branching_sweep_before_starting_ray(tmp_path) -> None:
    from experiments.ray_executor import run_sweep_ray
    from lab.errors import ConfigError

    with pytest.raises(ConfigError, match="not --executor ray yet"):
        run_sweep_ray(str(branching_sweep(tmp_path)), str(tmp_path / "out"), OPTIONS)
