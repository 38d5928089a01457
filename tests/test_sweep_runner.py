"""The runner end to end on the `micro` sweep (6 runs of ~1 s): tables, idempotence, status,
verify, failures, a SIGKILLed runner restarted, two workers sharing one directory.

Runners are subprocesses with one CPU device (no fake 8-device mesh), as a user runs them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.results import CURVE_COLUMNS, RESULT_COLUMNS, read_csv, rebuild_tables
from experiments.status import sweep_progress
from experiments.sweep_dir import read_plan

REPO = Path(__file__).resolve().parent.parent
MICRO = REPO / "experiments" / "configs" / "micro.toml"
AGREED_COLUMNS = [
    "run_id",
    "budget",
    "N",
    "N_nonemb",
    "D",
    "C_6N",
    "C_6N_nonemb",
    "C_detailed",
    "loss",
    "status",
    "seed",
    "tuning",
    "steps",
    "batch_size",
    "peak_lr",
    "epochs",
    "tokens_per_param",
    "wall_time_s",
    "train_time_s",
    "mfu",
    "git_commit",
    "config_hash",
    "corpus_fingerprint",
    "device_kind",
    "device_count",
]


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out["JAX_PLATFORMS"] = "cpu"
    return out


def sweep(*args: str, sweep_file: Path = MICRO, **kwargs) -> subprocess.Popen:
    if args[0] == "run" and "--jobs" not in args:
        args = (*args, "--jobs", "1")
    command = [sys.executable, "-m", "experiments.main", "sweep", *args]
    command = [part if part != "FILE" else str(sweep_file) for part in command]
    return subprocess.Popen(
        command, cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(process: subprocess.Popen, timeout: float = 240, code: int = 0) -> str:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == code, out
    return out


def trained(output: str) -> list[str]:
    """Run ids a runner reported finishing (one `[worker] k/n RUN_ID ...` line each)."""
    return [line.split()[2] for line in output.splitlines() if line.startswith("[w")]


def results(root: Path) -> dict[str, dict]:
    return {
        p.name: json.loads((p / "result.json").read_text())
        for p in (root / "runs").iterdir()
        if (p / "result.json").exists()
    }


@pytest.fixture(scope="module")
def done(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("micro")
    output = finish(sweep("run", "FILE", "--out", str(root), "--no-progress"))
    assert len(trained(output)) == 6
    return root


def test_every_run_finished_with_both_tables(done: Path) -> None:
    plan = read_plan(done)
    rows = read_csv(done / "results.csv")
    assert sorted(r["run_id"] for r in rows) == sorted(p["run_id"] for p in plan["points"])
    assert set(AGREED_COLUMNS) <= set(rows[0]) and tuple(rows[0]) == RESULT_COLUMNS
    for row in rows:
        result = json.loads((done / "runs" / row["run_id"] / "result.json").read_text())
        assert row["status"] == "done" and float(row["loss"]) == result["loss"]
        assert int(row["D"]) == result["D"] and int(row["N"]) == result["N"]
        assert float(row["tokens_per_param"]) == pytest.approx(result["D"] / result["N"])
        assert row["tuning"] == "False"
    curves = read_csv(done / "curves.csv")
    assert tuple(curves[0]) == CURVE_COLUMNS
    assert len(curves) == sum(len(r["eval_curve"]) for r in results(done).values())
    assert {c["fraction"] for c in curves} >= {"0.5", "1.0"}


def test_rebuilt_tables_equal_the_incremental_ones(done: Path) -> None:
    incremental = [(done / name).read_bytes() for name in ("results.csv", "curves.csv")]
    (done / "results.csv").unlink()
    (done / "curves.csv").unlink()
    assert rebuild_tables(done)[0] == 6
    assert [(done / name).read_bytes() for name in ("results.csv", "curves.csv")] == incremental


def test_running_a_finished_sweep_again_trains_nothing(done: Path) -> None:
    before = {p: (p / "result.json").stat().st_mtime_ns for p in (done / "runs").iterdir()}
    output = finish(sweep("run", "FILE", "--out", str(done), "--no-progress"))
    assert trained(output) == []
    assert before == {p: (p / "result.json").stat().st_mtime_ns for p in (done / "runs").iterdir()}
    progress = sweep_progress(done)
    assert (progress["done"], progress["left"], progress["running"]) == (6, 0, 0)
    assert progress["flops_fraction"] == 1.0 and progress["eta_s"] == 0.0


def test_verify_reproduces_a_run_exactly(done: Path) -> None:
    output = finish(sweep("verify", str(done), "--runs", "1"))
    line = output.strip().splitlines()[-1].split()
    assert line[-1] == "yes" and float(line[3]) == 0.0  # |diff| bitwise zero on this machine


def test_verify_names_the_flags_when_a_run_was_recorded_under_other_xla_flags(
    done: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(done, copy)
    run = copy / "runs" / read_plan(copy)["points"][0]["run_id"] / "result.json"
    result = json.loads(run.read_text())
    assert result["provenance"]["xla_flags"] == ""  # the tests' runner drops XLA_FLAGS
    result["provenance"]["xla_flags"] = "--xla_cpu_multi_thread_eigen=false"
    run.write_text(json.dumps(result))
    output = finish(sweep("verify", str(copy), "--runs", "1"))
    table, note = output.strip().splitlines()[-2:]
    assert table.split()[-1] == "yes"
    assert note.startswith(f"note: {run.parent.name}: recorded under XLA_FLAGS=")
    assert "--xla_cpu_multi_thread_eigen=false" in note


def test_a_run_that_raises_is_recorded_as_failed_and_not_retried(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    text = MICRO.read_text().replace("[model]\nctx = 16", "[model]\nctx = 16\nvocab_size = 8")
    bad.write_text(text)  # the synthetic corpus has 16 token ids: lab refuses vocab 8
    root = tmp_path / "out"
    output = finish(sweep("run", "FILE", "--out", str(root), sweep_file=bad), code=1)
    assert output.count("FAILED: model.vocab_size=8") == 6
    assert output.count("scaling-lab sweep run: run ") == 6  # each failed run named
    rows = read_csv(root / "results.csv")
    assert len(rows) == 6 and {r["status"] for r in rows} == {"failed"}
    assert all("vocab_size" in r["error"] for r in rows)
    again = finish(sweep("run", "FILE", "--out", str(root), sweep_file=bad), code=1)
    assert trained(again) == []


def test_sigkilled_runner_restarts_and_does_each_run_once(tmp_path) -> None:
    root = tmp_path / "out"
    runner = sweep("run", "FILE", "--out", str(root), "--no-progress")
    deadline = time.monotonic() + 180
    killed_in = None
    while time.monotonic() < deadline and killed_in is None:
        time.sleep(0.05)
        finished = results(root) if (root / "runs").exists() else {}
        for run in (root / "runs").glob("*") if finished else []:
            metrics = run / "metrics.jsonl"
            steps = len(metrics.read_text().splitlines()) if metrics.exists() else 0
            if not (run / "result.json").exists() and steps >= 50:  # past the step-40 checkpoint
                os.kill(runner.pid, signal.SIGKILL)
                killed_in = run.name
                break
    runner.communicate()
    assert killed_in, "the runner finished before it could be killed mid-run"
    before = {name: r["provenance"]["finished_at"] for name, r in results(root).items()}
    assert 1 <= len(before) < 6
    output = finish(sweep("run", "FILE", "--out", str(root), "--no-progress"))
    everything = {p["run_id"] for p in read_plan(root)["points"]}
    assert sorted(trained(output)) == sorted(everything - set(before))
    after = results(root)
    assert len(after) == 6
    assert {name: after[name]["provenance"]["finished_at"] for name in before} == before
    for name, result in after.items():  # every step logged exactly once, resume included
        steps = [
            json.loads(line)["step"] for line in (root / "runs" / name / "metrics.jsonl").open()
        ]
        assert steps == list(range(1, result["steps"] + 1)), name
    plain = tmp_path / "plain"
    config = root / "runs" / killed_in / "config.json"
    command = [sys.executable, "-m", "experiments.main", "train", "--config", str(config)]
    subprocess.run([*command, "--out", str(plain)], cwd=REPO, env=env(), check=True)
    uninterrupted = json.loads((plain / "result.json").read_text())
    assert after[killed_in]["loss"] == uninterrupted["loss"]  # resumed == uninterrupted, bitwise


def test_two_workers_split_one_directory(tmp_path) -> None:
    """Worker 0 runs two child jobs, worker 1 trains in-process: three trainers, one dir."""
    root = tmp_path / "out"
    common = ("run", "FILE", "--out", str(root), "--workers", "2", "--no-progress")
    first = sweep(*common, "--worker", "0", "--jobs", "2")
    second = sweep(*common, "--worker", "1")
    runs = [trained(finish(first)), trained(finish(second))]
    everything = {p["run_id"] for p in read_plan(root)["points"]}
    assert set(runs[0]).isdisjoint(runs[1])
    assert sorted(runs[0] + runs[1]) == sorted(everything)
    assert runs[0] and runs[1]  # both did work
    assert not list((root / "claims").glob("*.json"))
    assert len(read_csv(root / "results.csv")) == 6


def test_diverged_run_is_recorded_and_retried_only_when_asked(tmp_path) -> None:
    text = MICRO.read_text().replace("d_models = [16, 32]", "d_models = [16]")
    text = text.replace("budgets_flops = [3e8, 6e8]", "budgets_flops = [3e8]")
    text = text.replace("extra_seeds_near_minimum = 1", "extra_seeds_near_minimum = 0")
    bad = tmp_path / "diverge.toml"
    bad.write_text(text + "\n[optimizer]\npeak_lr = 10.0\nwarmup_steps = 0\nclip_norm = 0.0\n")
    root = tmp_path / "out"
    output = finish(sweep("run", "FILE", "--out", str(root), sweep_file=bad))
    assert "DIVERGED: loss" in output and len(trained(output)) == 1
    (row,) = read_csv(root / "results.csv")
    assert row["status"] == "diverged" and row["loss"] == "" and "ln(vocab)" in row["error"]
    assert trained(finish(sweep("run", "FILE", "--out", str(root), sweep_file=bad))) == []
    again = finish(sweep("run", "FILE", "--out", str(root), "--retry-diverged", sweep_file=bad))
    assert trained(again) == [row["run_id"]]
    assert (root / "attempts" / f"{row['run_id']}.1" / "result.json").exists()
