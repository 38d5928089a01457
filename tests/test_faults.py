"""Fault injection: each case of issue 15's table, tried as a user meets it, stays fixed.

Damaged files, a killed run's garbage log line, a torn table, an edited config, bad input,
a read-only directory and a full disk. Runs are the tiny configs of test_train_run and a
two-run `micro` sweep, in this process (8 fake CPU devices), so the suite takes seconds per
case. The real-filesystem cases mount a small tmpfs (we are root in CI); where mounting is
not allowed they are skipped, and the injected variant still runs.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_train_run import tiny_run

from experiments.main import main
from experiments.options import RunnerOptions
from experiments.results import read_csv
from experiments.runner import run_sweep
from experiments.status import format_status, sweep_progress
from experiments.sweep_dir import read_plan
from experiments.verify import format_verification, verify_run
from lab import run_dir
from lab.checkpoint import RunCheckpoints
from lab.errors import ConfigError
from lab.metrics import JsonlLog
from lab.runtime.disk import DiskFullError
from lab.train import train

REPO = Path(__file__).resolve().parent.parent
MICRO = (REPO / "experiments" / "configs" / "micro.toml").read_text()
OPTIONS = RunnerOptions(jobs=1, progress=False, compilation_cache=None, heartbeat_s=1.0)


def two_run_sweep(tmp_path: Path, **replace: str) -> Path:
    """micro cut to one budget and no extra seed: 2 runs of ~1 s."""
    text = MICRO.replace("budgets_flops = [3e8, 6e8]", "budgets_flops = [3e8]")
    text = text.replace("extra_seeds_near_minimum = 1", "extra_seeds_near_minimum = 0")
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    report = run_sweep(str(two_run_sweep(root)), str(root / "out"), OPTIONS)
    assert report.exit_code == 0 and len(report.trained) == 2
    return root / "out"


@pytest.fixture
def sweep_copy(finished_sweep: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(finished_sweep, target)
    return target


def run_ids(root: Path) -> list[str]:
    return sorted(p["run_id"] for p in read_plan(root)["points"])


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_truncated_result_json_is_reported_damaged_and_trained_again(sweep_copy, capsys):
    damaged, intact = run_ids(sweep_copy)
    result = sweep_copy / "runs" / damaged / "result.json"
    loss = json.loads(result.read_text())["loss"]
    result.write_text(result.read_text()[:100])

    progress = sweep_progress(sweep_copy)
    assert progress["damaged"] == [damaged] and progress["done"] == 1 and progress["left"] == 1
    assert f"damaged {damaged}: its result.json cannot be read" in format_status(sweep_copy)
    code, _, err = cli(capsys, "sweep", "table", str(sweep_copy))
    assert code == 0 and f"left out {damaged}" in err
    assert [r["run_id"] for r in read_csv(sweep_copy / "results.csv")] == [intact]

    report = run_sweep(str(sweep_copy / "sweep.toml"), str(sweep_copy), OPTIONS)
    assert report.trained == [damaged] and report.exit_code == 0
    assert json.loads(result.read_text())["loss"] == loss  # retrained, bitwise the same
    assert len(read_csv(sweep_copy / "results.csv")) == 2


def test_truncated_config_json_fails_that_run_and_the_sweep_goes_on(tmp_path, capsys):
    from experiments.runner import prepare

    sweep_file, out = two_run_sweep(tmp_path), tmp_path / "out"
    _, grid = prepare(str(sweep_file), str(out))
    first, second = sorted(grid.points, key=lambda p: p.run_id)
    config = out / "runs" / first.run_id / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text('{"model": {"n_layers": 1, "d_mo')  # a copy cut short

    code, _, err = cli(
        capsys, "sweep", "run", str(sweep_file), "--out", str(out), "--jobs", "1",
        "--no-progress", "--compilation-cache", "none",
    )  # fmt: skip
    assert code == 1 and "Traceback" not in err
    assert f"run {first.run_id} failed: {config} is damaged (not valid JSON" in err
    assert f"delete {config.parent} to train the run from the start" in err
    assert run_dir.read_result(out / "runs" / second.run_id)["status"] == "done"  # went on
    run_config = tmp_path / "first.json"
    run_config.write_text(json.dumps(first.config.to_dict()))
    code, _, err = cli(capsys, "train", "--config", str(run_config), "--out", str(config.parent))
    assert code == 2 and f"{config} is damaged" in err and err.count("\n") == 1


def test_garbage_line_in_a_killed_runs_metrics_loses_nothing_on_resume(tmp_path, data_config):
    config = tiny_run(data_config, checkpoint_every_steps=8, keep_checkpoints=3)
    reference = train(config, tmp_path / "reference", progress=False)
    run = tmp_path / "killed"
    shutil.copytree(tmp_path / "reference", run)
    # As if killed at step 20, after the step-16 checkpoint: no result, no step-24 checkpoint,
    # logs up to step 20, and a garbage line after step 10 (the case that lost steps 11-20).
    (run / "result.json").unlink()
    shutil.rmtree(run / "checkpoints" / "24")
    lines = (run / "metrics.jsonl").read_text().splitlines()[:20]
    logged = [json.loads(line) for line in lines]
    (run / "metrics.jsonl").write_text("\n".join([*lines[:10], "#!garbage", *lines[10:]]) + "\n")
    evals = [e for e in JsonlLog(run / "evals.jsonl").read() if e["step"] <= 20]
    (run / "evals.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))

    with pytest.warns(UserWarning, match=r"skipped 1 unreadable line\(s\) \(line 11\); repaired"):
        resumed = train(config, run, progress=False)

    after = JsonlLog(run / "metrics.jsonl").read()
    assert [line["step"] for line in after] == list(range(1, 25))
    assert [line["loss"] for line in after[:16]] == [line["loss"] for line in logged[:16]]
    assert resumed["loss"] == reference["loss"]
    assert resumed["eval_curve"] == reference["eval_curve"]


def test_torn_results_csv_disagrees_with_tables_json_and_sweep_table_rebuilds(sweep_copy, capsys):
    manifest = json.loads((sweep_copy / "tables.json").read_text())
    assert manifest["schema"] == 1
    for name in ("results.csv", "curves.csv"):
        data = (sweep_copy / name).read_bytes()
        assert manifest["files"][name] == {
            "rows": len(read_csv(sweep_copy / name)),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    assert manifest["files"]["results.csv"]["rows"] == 2
    assert manifest["files"]["curves.csv"]["rows"] == 6  # 3 evals per run
    table = sweep_copy / "results.csv"
    whole = table.read_bytes()
    table.write_bytes(whole[: len(whole) - 40])  # cut mid-row
    assert (
        hashlib.sha256(table.read_bytes()).hexdigest() != manifest["files"]["results.csv"]["sha256"]
    )
    code, _, _ = cli(capsys, "sweep", "table", str(sweep_copy))
    assert code == 0 and table.read_bytes() == whole
    assert json.loads((sweep_copy / "tables.json").read_text()) == manifest


def test_verify_names_a_config_json_edited_after_the_run(sweep_copy, capsys):
    run_id = run_ids(sweep_copy)[0]
    config_path = sweep_copy / "runs" / run_id / "config.json"
    config = json.loads(config_path.read_text())
    config["seed"] = 7
    config_path.write_text(json.dumps(config))

    verification = verify_run(sweep_copy, run_id)
    assert not verification.ok and verification.config_changed
    assert "no longer matches the config its result was trained" in verification.note
    assert "config.json edited since the run" in format_verification([verification])
    assert not (sweep_copy / "verify" / run_id).exists()  # nothing re-run
    code, out, _ = cli(capsys, "sweep", "verify", str(sweep_copy), "--runs", "2")
    assert code == 1 and f"note: {run_id}: " in out


def test_unknown_model_key_with_params_is_the_same_clean_error(tmp_path, capsys):
    errors = []
    for shape in ("params = 3e4", "n_layers = 1\nd_model = 16\nn_heads = 1\nd_ff = 64"):
        path = tmp_path / "run.toml"
        path.write_text(f"num_tokens = 8192\n[model]\n{shape}\nbogus = 1\n")
        code, _, err = cli(capsys, "train", "--config", str(path), "--out", str(tmp_path / "r"))
        assert code == 2
        errors.append(err)
    assert errors[0] == errors[1]
    assert "unknown ModelConfig key(s) ['bogus']" in errors[0] and errors[0].count("\n") == 1


def test_batch_not_divisible_by_the_devices_is_a_clear_error(tmp_path, data_config):
    config = tiny_run(data_config, batch_size=6, num_tokens=24 * 6 * 32)
    with pytest.raises(ConfigError, match=r"batch_size 6 does not split over the 8 devices"):
        train(config, tmp_path / "run", progress=False)


def test_a_grid_the_planner_dropped_entirely_is_refused_with_the_reasons(tmp_path, capsys):
    sweep_file = two_run_sweep(tmp_path, **{"budgets_flops = [3e8]": "budgets_flops = [1e5]"})
    code, _, err = cli(capsys, "sweep", "run", str(sweep_file), "--out", str(tmp_path / "o"))
    assert code == 2
    assert "the planner dropped every grid point (2)" in err
    assert "too few steps: 1 < min_steps 20" in err and "budget) (2x)" in err


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A real small (or read-only) file system at `path`; skip the test where we cannot mount."""
    path.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_read_only_output_directory_is_one_line_naming_the_path(tmp_path, capsys, data_config):
    config = tmp_path / "run.json"
    config.write_text(json.dumps(tiny_run(data_config).to_dict()))
    with tmpfs(tmp_path / "ro", "ro,size=1m") as readonly:
        code, _, err = cli(capsys, "train", "--config", str(config), "--out", str(readonly / "r"))
        assert code == 2
        assert err == f"scaling-lab train: error: cannot access {readonly / 'r'}: " + (
            "Read-only file system\n"
        )


def _allocated(path: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def test_full_disk_is_one_line_with_the_free_space_and_resumes_bitwise(tmp_path, data_config):
    """A real full file system (a small tmpfs), the real CLI in a subprocess: what a user sees."""
    config = tiny_run(data_config, checkpoint_every_steps=6)
    reference = train(config, tmp_path / "reference", progress=False)
    one_checkpoint = _allocated(tmp_path / "reference" / "checkpoints" / "24")
    config_path = tmp_path / "run.json"
    config_path.write_text(json.dumps(config.to_dict()))
    size = (int(1.6 * one_checkpoint) // 4096 + 1) * 4096  # the first checkpoint, not two
    with tmpfs(tmp_path / "disk", f"size={size}") as disk:
        command = [sys.executable, "-m", "experiments.main", "train", "--config"]
        command += [str(config_path), "--out", str(disk / "run")]
        full = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert full.returncode == 74, full.stderr[-3000:]
        (line,) = full.stderr.splitlines()  # one line, no orbax traceback
        assert line.startswith(f"scaling-lab train: error: no space left on the device of {disk}")
        assert re.search(r": [0-9.]+ (B|KiB) free; free some space and run the same command", line)
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
        again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-3000:]
        resumed = run_dir.read_result(disk / "run")
    assert resumed["loss"] == reference["loss"]
    assert resumed["eval_curve"] == reference["eval_curve"]


def test_full_disk_injected_where_orbax_and_the_jsonl_log_write(tmp_path, data_config, monkeypatch):
    """The same without a real file system: tensorstore's error text, then a JSONL flush."""
    config = tiny_run(data_config, checkpoint_every_steps=6)
    reference = train(config, tmp_path / "reference", progress=False)
    save, write = RunCheckpoints.save, JsonlLog.write

    def full_at_12(self, step, *args, **kwargs):
        if step == 12:
            raise ValueError(
                'RESOURCE_EXHAUSTED: Failed writing: "/x/d/ab": Failed to write 85868 bytes '
                "to file 18: No space left on device [os_error_code='28']"
            )
        return save(self, step, *args, **kwargs)

    def full_at_step_20(self, record):
        if record.get("step") == 20:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(self, record)

    for patch in ((RunCheckpoints, "save", full_at_12), (JsonlLog, "write", full_at_step_20)):
        monkeypatch.setattr(*patch)
        with pytest.raises(DiskFullError, match=r"no space left on the device of .*run"):
            train(config, tmp_path / "run", progress=False)
        monkeypatch.undo()
    resumed = train(config, tmp_path / "run", progress=False)
    assert resumed["loss"] == reference["loss"]
    steps = [line["step"] for line in JsonlLog(tmp_path / "run" / "metrics.jsonl").read()]
    assert steps == list(range(1, 25))


def test_sweep_table_on_a_missing_path_is_an_error(tmp_path, capsys):
    missing = tmp_path / "no" / "such" / "sweep"
    code, _, err = cli(capsys, "sweep", "table", str(missing))
    assert code == 2 and "is not a sweep directory" in err
    assert not missing.exists() and not (tmp_path / "no").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--budget", "nan"], "--budget must be a positive finite number, got nan"),
        (["--budget=-1e15"], "--budget must be a positive finite number, got -1e+15"),
        (["--batch", "0"], "--batch must be a positive number of sequences, got 0"),
        (["--params=-3"], "--params must be a positive finite number, got -3"),
    ],
)
def test_info_refuses_nan_negative_budgets_and_an_empty_batch(capsys, argv, message):
    base = ["info"] if argv[0].startswith("--params") else ["info", "--params", "3e5"]
    code, out, err = cli(capsys, *base, *argv)
    assert code == 2 and out == "" and message in err and err.count("\n") == 1


def test_a_sweep_with_failed_runs_exits_1_naming_them(tmp_path, capsys):
    bad = two_run_sweep(tmp_path, **{"[model]\nctx = 16": "[model]\nctx = 16\nvocab_size = 8"})
    out = tmp_path / "out"
    argv = ("sweep", "run", str(bad), "--out", str(out), "--jobs", "1", "--no-progress")
    code, _, err = cli(capsys, *argv)
    assert code == 1
    for run_id in run_ids(out):
        assert f"scaling-lab sweep run: run {run_id} failed: model.vocab_size=8" in err
    assert "2 run(s) failed; fix the cause and re-run with --retry-failed" in err
    assert "exit codes:" in _help(capsys) and "1    something failed" in _help(capsys)


def _help(capsys) -> str:
    with pytest.raises(SystemExit):
        main(["--help"])
    return capsys.readouterr().out
