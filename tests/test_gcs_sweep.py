"""A sweep on one bucket: two workers contending for every run, then `fit` and `report`
reading it from gs:// (the GCS emulator, tests/gcs_emulator.py).

Both workers start on the same runs in the same order (`--workers 1` each, two names), so
every claim is contended; the precondition-based claims must let each run be trained
exactly once. The fits read from the bucket must equal those read from a local copy.
The default suite runs a two-run sweep (~20 s of CPU); the full micro sweep with status,
table, fit and report is `slow`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.cli import run as analysis_main
from experiments.sweep_dir import read_plan, run_state

ANNOUNCE = re.compile(r"^\[(?P<worker>\w+)\] \d+/\d+ (?P<run_id>\S+) ", re.MULTILINE)


def contending_workers(gcs_emulator, sweep: str, name: str):
    """`sweep` trained into gs://.../sweep by two workers that start on the same runs:
    (the test's Bucket, the sweep's URL, the workers' stdouts)."""
    from gcs_emulator import Bucket

    bucket = Bucket.for_test(gcs_emulator, name)
    out = bucket.url("sweep")
    env = {**os.environ, "SCALING_LAB_QUIET": "1"}
    command = [sys.executable, "-m", "experiments.main", "sweep", "run", sweep, "--out", out]
    command += ["--jobs", "1", "--no-progress", "--compilation-cache", "none"]
    workers = [
        subprocess.Popen(
            [*command, "--worker-name", name],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("A", "B")
    ]
    outputs = [w.communicate(timeout=400) for w in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-3000:]
    return bucket, out, [stdout for stdout, _ in outputs]


@pytest.fixture(scope="module")
def bucket_sweep(gcs_emulator):
    """micro (6 runs) trained into the bucket by two contending workers."""
    return contending_workers(gcs_emulator, "micro", "sweep")


def _assert_each_run_trained_once(bucket, out: str, stdouts: list[str]) -> None:
    run_ids = sorted(p["run_id"] for p in read_plan(out)["points"])
    trained = [m["run_id"] for text in stdouts for m in ANNOUNCE.finditer(text)]
    assert sorted(trained) == run_ids, stdouts  # every run once, none twice
    assert all(run_state(out, run_id) == "done" for run_id in run_ids)
    stored = bucket.objects("sweep")
    assert not [name for name in stored if name.startswith("claims/")]  # all released
    assert {"results.csv", "curves.csv", "tables.json", "plan.json"} <= set(stored)
    for run_id in run_ids:
        assert f"runs/{run_id}/result.json" in stored
        assert not [n for n in stored if n.startswith(f"runs/{run_id}/checkpoints/")]


def test_two_contending_workers_train_a_two_run_sweep_once_each(gcs_emulator, tmp_path) -> None:
    """The default suite's sweep on a bucket: micro cut to its two smallest-budget runs."""
    micro = Path(__file__).resolve().parent.parent / "experiments" / "configs" / "micro.toml"
    text = micro.read_text().replace("budgets_flops = [3e8, 6e8]", "budgets_flops = [3e8]")
    sweep = tmp_path / "two_runs.toml"
    sweep.write_text(text.replace("extra_seeds_near_minimum = 1", "extra_seeds_near_minimum = 0"))
    bucket, out, stdouts = contending_workers(gcs_emulator, str(sweep), "two-runs")
    assert len(read_plan(out)["points"]) == 2
    _assert_each_run_trained_once(bucket, out, stdouts)


@pytest.mark.slow
def test_two_workers_on_one_bucket_train_each_run_exactly_once(bucket_sweep) -> None:
    bucket, out, stdouts = bucket_sweep
    _assert_each_run_trained_once(bucket, out, stdouts)
    by_worker = [{m["run_id"] for m in ANNOUNCE.finditer(text)} for text in stdouts]
    assert all(by_worker), "both workers should have trained something"


@pytest.mark.slow  # these share the micro sweep: two CLI workers, ~100 s on 2 cores
def test_status_and_table_read_and_rebuild_a_sweep_in_the_bucket(bucket_sweep, capsys) -> None:
    from experiments.main import main

    bucket, out, _ = bucket_sweep
    total = len(read_plan(out)["points"])
    assert main(["sweep", "status", out]) == 0
    assert f"{total}/{total} finished ({total} done" in capsys.readouterr().out
    before = bucket.read("sweep", "results.csv")
    assert main(["sweep", "table", out]) == 0
    capsys.readouterr()
    assert bucket.read("sweep", "results.csv") == before  # rebuilt from the runs: the same
    assert len(before.decode().splitlines()) == total + 1


def _download(url: str, target: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("gcs")
    for name in fs.find(url):
        relative = name[len(url.removeprefix("gs://")) + 1 :]
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        (target / relative).write_bytes(fs.cat_file(name))


def _timeless(report: str) -> str:
    """A report without its provenance row `generated` (the minute it was written)."""
    return "\n".join(line for line in report.splitlines() if not line.startswith("| generated"))


@pytest.mark.slow
def test_fit_and_report_read_a_sweep_from_the_bucket(bucket_sweep, tmp_path, capsys) -> None:
    _, out, _ = bucket_sweep
    local = tmp_path / "copy"
    _download(out, local)
    docs = []
    for source in (out, str(local)):
        args = ["fit", source, "--json", "--bootstrap", "20", "--bootstrap-a3", "20"]
        assert analysis_main(args) == 0
        docs.append(json.loads(capsys.readouterr().out.replace(source, "SOURCE")))
    assert docs[0] == docs[1]
    assert docs[0]["n_runs"] == len(read_plan(out)["points"])  # every run read from gs://
    assert docs[0]["approach3"]["n_points"] == docs[0]["n_runs"]  # a real fit, not empty

    reports = []
    for name, source in (("remote", out), ("local", str(local))):
        target = tmp_path / name
        args = ["report", source, "--out", str(target), "--markdown-only", "--bootstrap", "20"]
        assert analysis_main(args) == 0
        capsys.readouterr()
        reports.append(_timeless((target / "report.md").read_text().replace(source, "SOURCE")))
    assert reports[0] == reports[1]

    # and written to the bucket: the same page, its figures beside it
    bucket, _, _ = bucket_sweep
    args = ["report", out, "--out", f"{out}/report", "--markdown-only", "--bootstrap", "20"]
    assert analysis_main(args) == 0
    assert f"{out}/report/report.md" in capsys.readouterr().out
    page = bucket.read("sweep", "report", "report.md").decode()
    assert _timeless(page.replace(out, "SOURCE")) == reports[0]
    local_figures = sorted(p.name for p in (tmp_path / "local").rglob("*.png"))
    stored = sorted(n.rsplit("/", 1)[-1] for n in bucket.objects("sweep", "report"))
    assert local_figures and set(local_figures) <= set(stored)
