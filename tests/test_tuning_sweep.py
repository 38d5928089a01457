"""A sweep with a tuning stage (micro sizes): SIGKILLed mid-tuning and resumed, it redoes no
finished tuning run, and every main run trains at the LR of the fitted law LR_opt(N)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.lr_tuning import LrLaw, fit_lr_law, picks_by_size
from experiments.plan import plan_table
from experiments.results import read_csv
from experiments.sweep_file import SweepError, parse_sweep
from experiments.tuning import tuning_points
from experiments.tuning_spec import TuningSpecError

REPO = Path(__file__).resolve().parent.parent
MICRO = REPO / "experiments" / "configs" / "micro.toml"
TUNING = '\n[tuning]\nlr_values = [1e-3, 3e-3, 1e-2, 3e-2]\nsteps = 24\nsizes = "all"\n'


def _env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out["JAX_PLATFORMS"] = "cpu"
    return out


def _run(sweep_file: Path, root: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "experiments.main", "sweep", "run", str(sweep_file)]
    command += ["--out", str(root), "--jobs", "1", "--no-progress"]
    return subprocess.Popen(
        command, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finished(root: Path) -> dict[str, float]:
    runs = root / "runs"
    return {
        p.name: json.loads((p / "result.json").read_text())["provenance"]["finished_at"]
        for p in (runs.iterdir() if runs.exists() else [])
        if (p / "result.json").exists()
    }


def _spec(extra: str = TUNING):
    import tomllib

    return parse_sweep(tomllib.loads(MICRO.read_text() + extra), default_name="micro_tuned")


def test_tuning_table_is_validated() -> None:
    with pytest.raises(TuningSpecError, match="needs either lr_values"):
        _spec("\n[tuning]\nsteps = 10\n")
    with pytest.raises(TuningSpecError, match="exactly one of steps"):
        _spec("\n[tuning]\nlr_values = [1e-3, 2e-3, 4e-3]\n")
    with pytest.raises(TuningSpecError, match="unknown \\[tuning\\] key"):
        _spec(TUNING + "lr = 3\n")
    with pytest.raises(SweepError, match="unknown table"):
        _spec("\n[tunning]\nsteps = 3\n")
    spec = _spec("\n[tuning]\nlr_min = 1e-3\nlr_max = 1.6e-2\nlr_points = 5\nsteps = 9\n")
    assert spec.tuning.lrs == pytest.approx((1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2))


def test_plan_lists_tuning_runs_and_their_cost_fraction() -> None:
    from experiments.grid import solve_grid

    spec = _spec()
    grid = solve_grid(spec, vocab_size=16)
    points = tuple(tuning_points(spec, grid))
    assert len(points) == 2 * 4  # 2 widths x 4 LRs x 1 seed
    assert all(p.tuning and p.run_id.startswith("tune_") and p.steps == 24 for p in points)
    text = plan_table(spec, grid, None, points)
    fraction = sum(p.budget_spent for p in points) / grid.total_flops
    assert f"tuning: 8 runs, {sum(p.budget_spent for p in points):.3g} FLOPs" in text
    assert f"{fraction:.1%} of the study's" in text
    with pytest.raises(TuningSpecError, match="not widths of the ladder"):
        tuning_points(_spec(TUNING.replace('"all"', "[24]")), grid)


def test_tuning_sweep_killed_and_resumed_redoes_nothing_and_uses_the_law(tmp_path) -> None:
    sweep_file = tmp_path / "micro_tuned.toml"
    sweep_file.write_text(MICRO.read_text() + TUNING)
    root = tmp_path / "out"
    runner = _run(sweep_file, root)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_finished(root)) < 3:
        time.sleep(0.05)
    os.kill(runner.pid, signal.SIGKILL)
    runner.communicate()
    before = _finished(root)
    assert 3 <= len(before) < 8 and all(name.startswith("tune_") for name in before)
    assert not (root / "lr_law.json").exists()

    output, _ = _run(sweep_file, root).communicate(timeout=240)
    assert "tuning done: LR_opt(N) =" in output, output
    trained = [line.split()[2] for line in output.splitlines() if line.startswith("[w")]
    assert set(trained).isdisjoint(before)  # no finished tuning run redone
    after = _finished(root)
    assert {name: after[name] for name in before} == before
    assert len(after) == 8 + 6

    rows = read_csv(root / "results.csv")
    tuning = [r for r in rows if r["tuning"] == "True"]
    main = [r for r in rows if r["tuning"] == "False"]
    assert len(tuning) == 8 and len(main) == 6
    assert {r["lr_policy"] for r in tuning} == {"tuning"}
    assert {r["lr_policy"] for r in main} == {"tuned"}
    picks = picks_by_size(
        [float(r["N"]) for r in tuning],
        [float(r["peak_lr"]) for r in tuning],
        [float(r["loss"]) for r in tuning],
    )
    expected = fit_lr_law(list(picks), [p.lr for p in picks.values()])
    recorded = json.loads((root / "lr_law.json").read_text())["law"]
    assert recorded == pytest.approx(expected.to_dict())
    for row in main:
        assert json.loads(row["lr_law"]) == pytest.approx(recorded)
        assert float(row["peak_lr"]) == pytest.approx(
            float(LrLaw(**recorded)(float(row["N"]))), rel=1e-4
        )
    assert len({r["peak_lr"] for r in main}) == 2  # two sizes, two LRs from one law
