"""The sweep results directory and the state of each run in it.

    DIR/sweep.toml              copy of the sweep file: a directory describes itself
    DIR/plan.json               the solved grid (points and dropped points), for `status`
    DIR/runs/<run_id>/          lab.train's run directory + sweep_point.json (+ failure.json)
    DIR/claims/<run_id>.json    who is training it (see experiments.claims)
    DIR/attempts/               diverged runs moved aside by --retry-diverged
    DIR/results.csv, curves.csv the tables (experiments.results)

A run is done when `result.json` exists (lab writes it last, atomically), failed when the
runner wrote `failure.json`, damaged when its `result.json` cannot be read (unfinished: the
sweep trains it again); anything else is left (or running, if claimed). The run directory's
own files are `lab.run_dir`'s: this module asks it for their paths and records.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from experiments.grid import Grid, GridPoint
from experiments.sweep_file import SweepError, SweepSpec, load_sweep, parse_sweep
from lab import run_dir
from lab.run_status import RunStatus
from lab.runtime.atomic_io import (
    as_path,
    is_remote,
    read_json,
    write_json_atomic,
    write_text_atomic,
)

SWEEP_FILE = "sweep.toml"
PLAN_FILE = "plan.json"
RUNS_DIR = "runs"
POINT_FILE = "sweep_point.json"  # in each run dir: the grid point (budget, seed, ...)
FAILURE_FILE = "failure.json"  # in a failed run's dir: what it raised


def adopt_sweep_file(root: str | os.PathLike, sweep_path: str | os.PathLike) -> SweepSpec:
    """Copy the sweep file into DIR (first time) or check DIR holds the same sweep."""
    spec = load_sweep(sweep_path)
    target = as_path(root) / SWEEP_FILE
    text = Path(sweep_path).read_text() if Path(sweep_path).exists() else None
    if text is None:
        from experiments.sweep_file import resolve_sweep_path

        text = resolve_sweep_path(sweep_path).read_text()
    if target.exists():
        import tomllib

        recorded = parse_sweep(tomllib.loads(target.read_text()), default_name=spec.name)
        if recorded != spec:
            raise SweepError(
                f"{root} already holds a different sweep ({recorded.name}); use another --out, "
                f"or run the recorded one: scaling-lab sweep run {target} --out {root}"
            )
        return spec
    write_text_atomic(target, text)
    return spec


def load_dir_sweep(root: str | os.PathLike) -> SweepSpec:
    target = as_path(root) / SWEEP_FILE
    if not target.exists():
        raise SweepError(
            f"{root} is not a sweep directory (no {SWEEP_FILE}); start one with "
            f"scaling-lab sweep run FILE --out {root}"
        )
    import tomllib

    return parse_sweep(tomllib.loads(target.read_text()), default_name="sweep")


def write_plan(root: str | os.PathLike, grid: Grid, spec: SweepSpec) -> None:
    write_json_atomic(
        as_path(root) / PLAN_FILE,
        {
            "name": spec.name,
            "flop_convention": spec.flop_convention,
            "points": [
                {
                    **p.record(spec.flop_convention),
                    "C_detailed": p.detailed_flops,
                    "epochs": p.epochs,
                }
                for p in grid.points
            ],
            "dropped": [
                {"budget": d.budget, "target_params": d.target_params, "N": d.N, "reason": d.reason}
                for d in grid.dropped
            ],
        },
    )


def read_plan(root: str | os.PathLike) -> dict[str, Any]:
    path = as_path(root) / PLAN_FILE
    if not path.exists():
        raise SweepError(f"{root} has no {PLAN_FILE} yet; run `scaling-lab sweep run` on it first")
    return read_json(path)


def runs_root(root: str | os.PathLike):
    return as_path(root) / RUNS_DIR


def run_path(root: str | os.PathLike, run_id: str):
    return runs_root(root) / run_id


def run_state(root: str | os.PathLike, run_id: str) -> RunStatus:
    """done / diverged / damaged (from result.json), failed (failure.json), started or new."""
    path = run_path(root, run_id)
    state = run_dir.read_status(path)
    if state in (RunStatus.STARTED, RunStatus.NEW) and (path / FAILURE_FILE).exists():
        return RunStatus.FAILED
    return state


def read_result(root: str | os.PathLike, run_id: str) -> dict[str, Any] | None:
    """runs/<run_id>/result.json, through its owner (DamagedRunError if unreadable)."""
    return run_dir.read_result(run_path(root, run_id))


def damaged_runs(root: str | os.PathLike) -> list[str]:
    """Run ids whose result.json cannot be read: named by `sweep status` and `sweep table`."""
    runs = runs_root(root)
    if not runs.exists():
        return []
    return sorted(p.name for p in runs.iterdir() if run_dir.read_status(p) == RunStatus.DAMAGED)


def read_run(run) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(sweep_point.json, result.json) of one run directory: (None, None) without a point
    record, result None while unfinished; run_dir.DamagedRunError if the result is unreadable."""
    try:
        point = json.loads((run / POINT_FILE).read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    return point, run_dir.read_result(run)


def prepare_for_training(root: str | os.PathLike, point: GridPoint, convention: str) -> None:
    """Before (re)training `point`: a diverged run is moved aside, a failure record cleared
    (the caller retries such runs only when asked), and the point's record written."""
    state = run_state(root, point.run_id)
    if state == RunStatus.DIVERGED:
        move_aside(root, point.run_id)
    if state == RunStatus.FAILED:
        clear_failure(root, point.run_id)
    write_point(root, point, convention)


def write_point(root: str | os.PathLike, point: GridPoint, convention: str) -> None:
    path = run_path(root, point.run_id)
    path.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path / POINT_FILE, point.record(convention))


def write_failure(root: str | os.PathLike, run_id: str, message: str, host: str) -> None:
    record = {"run_id": run_id, "message": message, "host": host, "failed_at": time.time()}
    write_json_atomic(run_path(root, run_id) / FAILURE_FILE, record)


def failure_message(root: str | os.PathLike, run_id: str) -> str:
    """What a failed run raised (its failure.json)."""
    return str(read_json(run_path(root, run_id) / FAILURE_FILE).get("message", "unknown"))


def finished_at(root: str | os.PathLike, run_id: str) -> float:
    """When a finished run ended (UNIX time; 0 if unknown): result provenance or failure."""
    path = run_path(root, run_id)
    if run_dir.read_status(path) in (RunStatus.DONE, RunStatus.DIVERGED):
        stamp = run_dir.read_result(path).get("provenance", {}).get("finished_at")
        return datetime.datetime.fromisoformat(stamp).timestamp() if stamp else 0.0
    if (path / FAILURE_FILE).exists():
        return float(read_json(path / FAILURE_FILE).get("failed_at", 0.0))
    return 0.0


def clear_failure(root: str | os.PathLike, run_id: str) -> None:
    (run_path(root, run_id) / FAILURE_FILE).unlink(missing_ok=True)


def move_aside(root: str | os.PathLike, run_id: str) -> Path:
    """Move a diverged run's directory to DIR/attempts/<run_id>.<k> so it can be retried."""
    attempts = as_path(root) / "attempts"
    attempts.mkdir(parents=True, exist_ok=True)
    k = 1
    while (attempts / f"{run_id}.{k}").exists():
        k += 1
    target = attempts / f"{run_id}.{k}"
    if is_remote(root):
        from experiments.staging import copy_tree

        copy_tree(run_path(root, run_id), target)
        run_path(root, run_id).rmtree()
    else:
        shutil.move(str(run_path(root, run_id)), str(target))
    return target


def last_metrics_step(root: str | os.PathLike, run_id: str) -> int:
    """Steps logged so far by a running run (tail of metrics.jsonl; 0 if none)."""
    path = run_dir.metrics_path(run_path(root, run_id))
    if is_remote(root):  # an object: stored at the run's last checkpoint (lab.metrics)
        try:
            lines = path.read_text().strip().splitlines()[-64:]
        except (FileNotFoundError, OSError):
            return 0
        return _last_step(lines)
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 4096))
            lines = handle.read().decode(errors="replace").strip().splitlines()
    except (FileNotFoundError, OSError):
        return 0
    return _last_step(lines)


def _last_step(lines: list[str]) -> int:
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError):
            continue
    return 0
