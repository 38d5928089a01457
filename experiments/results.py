"""The results store: `results.csv` (one row per finished run) and `curves.csv` (every eval).

Both are derived from the run directories (`runs/<id>/result.json` or `failure.json`, plus
`sweep_point.json`, the runner's record of the run's budget and seed), so `sweep table`
rebuilds them at any time; the runner also updates them incrementally, one run at a time,
under a lock. Writes are atomic. `analysis` reads exactly these column names.

Every write of the tables also writes `tables.json`: each table's data-row count and the
SHA-256 of its bytes, so a reader can tell a table cut short (a copy, a full disk) from a
whole one. A run whose result.json cannot be read (damaged) has no row until it is retrained.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import os
from collections.abc import Iterator
from typing import Any

from experiments.sweep_dir import FAILURE_FILE, read_run, run_path, runs_root
from lab import run_dir
from lab.run_status import RunStatus
from lab.runtime.atomic_io import as_path, is_remote, write_json_atomic, write_text_atomic

RESULTS_FILE = "results.csv"
CURVES_FILE = "curves.csv"
TABLES_FILE = "tables.json"  # row counts and checksums of the two tables
TABLES_SCHEMA = 1

RESULT_COLUMNS = (
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
    "peak_flops",
    "git_commit",
    "config_hash",
    "corpus_fingerprint",
    "device_kind",
    "device_count",
    # beyond the agreed set
    "C_full",
    "budget_spent",
    "flop_convention",
    "extra_seed",
    "lr_policy",
    "lr_law",
    "ctx",
    "n_layers",
    "d_model",
    "tokens_per_s",
    "true_entropy",
    "jax_version",
    "flax_version",
    "host",
    "error",
    "flops_spent",  # FLOPs trained for this row: C, or a branch's cooldown + trunk share
    "start_step",  # a branch's first step (its trunk trained the ones before); 0 otherwise
    "trunk",  # a branch's trunk: its stable-LR curve in curves.csv has this run_id
)
CURVE_COLUMNS = (
    "run_id",
    "budget",
    "N",
    "N_nonemb",
    "D",
    "C_6N",
    "C_6N_nonemb",
    "C_detailed",
    "loss",
    "fraction",
    "step",
    "seed",
    "source_run_id",  # the run directory the row comes from (a trunk segment, a branch)
)
COOLDOWNS_PREFIX = "cooldowns_"  # a branching sweep: per trunk, its branches' final losses


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _law_cell(law: dict[str, float] | None) -> str | None:
    """The fitted LR law as compact JSON in one CSV cell (empty if the run used none)."""
    return json.dumps(law, sort_keys=True, separators=(",", ":")) if law else None


def result_row(point: dict[str, Any], result: dict[str, Any]) -> dict[str, str]:
    """One results.csv row from a run's sweep_point.json and result.json."""
    prov = result.get("provenance", {})
    timing = result.get("timing", {})
    throughput = result.get("throughput", {})
    model = result.get("config", {}).get("model", {})
    versions = prov.get("versions", {})
    divergence = result.get("divergence") or {}
    row = {
        "run_id": point["run_id"],
        "budget": point["budget"],
        "N": result["N"],
        "N_nonemb": result["N_nonemb"],
        "D": result["D"],
        "C_6N": result["C_6N"],
        "C_6N_nonemb": result["C_6N_nonemb"],
        "C_detailed": result["C_detailed"],
        "loss": result.get("loss"),
        "status": result["status"],
        "seed": point["seed"],
        "tuning": bool(point.get("tuning", False)),
        "steps": result["steps"],
        "batch_size": result["batch_size"],
        "peak_lr": result["peak_lr"],
        "epochs": result.get("epochs"),
        "tokens_per_param": result["D"] / result["N"],
        "true_entropy": result.get("true_entropy"),
        "wall_time_s": timing.get("total_s"),
        "train_time_s": timing.get("train_steps_s"),
        "mfu": throughput.get("mfu"),
        "peak_flops": result.get("peak_flops"),
        "git_commit": prov.get("git_commit"),
        "config_hash": prov.get("config_hash"),
        "corpus_fingerprint": prov.get("corpus_fingerprint"),
        "device_kind": prov.get("device_kind"),
        "device_count": prov.get("device_count"),
        "C_full": result.get("C_full"),
        "budget_spent": point.get("budget_spent"),
        "flop_convention": point.get("flop_convention"),
        "extra_seed": bool(point.get("extra_seed", False)),
        "lr_policy": point.get("lr_policy"),
        "lr_law": _law_cell(point.get("lr_law")),
        "ctx": result.get("ctx"),
        "n_layers": model.get("n_layers"),
        "d_model": model.get("d_model"),
        "tokens_per_s": throughput.get("tokens_per_s"),
        "jax_version": versions.get("jax"),
        "flax_version": versions.get("flax"),
        "host": prov.get("host"),
        "error": divergence.get("reason"),
        "flops_spent": point.get("flops_spent", point.get("budget_spent")),
        "start_step": point.get("start_step", 0),
        "trunk": point.get("trunk"),
    }
    return {k: _cell(v) for k, v in row.items()}


def failure_row(point: dict[str, Any], failure: dict[str, Any]) -> dict[str, str]:
    """A row for a run that raised (a ConfigError, say): status 'failed', no loss."""
    row = {k: "" for k in RESULT_COLUMNS}
    for key in ("run_id", "budget", "N", "N_nonemb", "D", "seed", "steps", "batch_size", "peak_lr"):
        row[key] = _cell(point.get(key))
    row.update(
        status=RunStatus.FAILED,
        tuning=_cell(bool(point.get("tuning", False))),
        config_hash=_cell(point.get("config_hash")),
        budget_spent=_cell(point.get("budget_spent")),
        flop_convention=_cell(point.get("flop_convention")),
        extra_seed=_cell(bool(point.get("extra_seed", False))),
        lr_policy=_cell(point.get("lr_policy")),
        lr_law=_cell(_law_cell(point.get("lr_law"))),
        host=_cell(failure.get("host")),
        error=_cell(failure.get("message")),
        flops_spent=_cell(point.get("flops_spent", point.get("budget_spent"))),
        start_step=_cell(point.get("start_step", 0)),
        trunk=_cell(point.get("trunk")),
    )
    return row


def curve_rows(point: dict[str, Any], result: dict[str, Any]) -> list[dict[str, str]]:
    """curves.csv rows: every held-out eval of the run (D, C at that point of training).

    A branching sweep's trunk segments add their evals to one curve per trunk (the
    stable-LR phase); a branch adds only its final, cooled-down loss, to its trunk's
    `cooldowns_` curve: per model size, the annealed loss at each budget (Approach 1)."""
    role = point.get("role", "run")
    entries = result.get("eval_curve", [])
    curve_id = point["run_id"]
    if role == "trunk":
        curve_id = point["trunk"]
    elif role == "branch":
        curve_id = COOLDOWNS_PREFIX + point["trunk"]
        entries = [e for e in entries if e["step"] == result["steps"]]
    rows = []
    for entry in entries:
        row = {
            "source_run_id": point["run_id"],
            "run_id": curve_id,
            "budget": point["budget"],
            "N": result["N"],
            "N_nonemb": result["N_nonemb"],
            "D": entry["tokens"],
            "C_6N": entry["C_6N"],
            "C_6N_nonemb": entry["C_6N_nonemb"],
            "C_detailed": entry["C_detailed"],
            "loss": entry["loss"],
            "fraction": entry["fraction"],
            "step": entry["step"],
            "seed": point["seed"],
        }
        rows.append({k: _cell(v) for k, v in row.items()})
    return rows


def run_rows(run) -> tuple[dict[str, str] | None, list[dict[str, str]]]:
    """(results row or None if unfinished, curve rows) of one run directory."""
    try:
        point, result = read_run(run)
    except run_dir.DamagedRunError:
        return None, []  # unfinished until retrained; `sweep status` names it
    if point is None:
        return None, []
    if result is not None:
        if point.get("role") == "trunk":  # not a point of the study: its curve only
            return None, curve_rows(point, result)
        return result_row(point, result), curve_rows(point, result)
    failure_path = run / FAILURE_FILE
    if failure_path.exists():
        return failure_row(point, json.loads(failure_path.read_text())), []
    return None, []


def _sort_key(row: dict[str, str]) -> tuple:
    def num(key: str) -> float:
        return float(row[key]) if row.get(key) else 0.0

    return (num("budget"), num("N"), num("seed"), row["run_id"], num("step"))


def _csv_text(rows: list[dict[str, str]], columns: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=_sort_key):
        writer.writerow(row)
    return buffer.getvalue()


def read_csv(path) -> list[dict[str, str]]:
    path = as_path(path)
    if not path.exists():
        return []
    return list(csv.DictReader(io.StringIO(path.read_text())))


def rebuild_tables(root: str | os.PathLike) -> tuple[int, int]:
    """Write results.csv and curves.csv from every run directory; (rows, curve rows)."""
    root = as_path(root)
    results, curves = [], []
    runs = runs_root(root)
    for run in sorted(runs.iterdir()) if runs.exists() else []:
        row, curve = run_rows(run)
        if row is not None:
            results.append(row)
        curves.extend(curve)
    with _table_lock(root):
        write_tables(root, results, curves)
    return len(results), len(curves)


def update_tables(root: str | os.PathLike, run_id: str) -> None:
    """Insert (or replace) one run's rows in both tables: the runner's incremental write."""
    root = as_path(root)
    row, curve = run_rows(run_path(root, run_id))
    with _table_lock(root):
        results = [r for r in read_csv(root / RESULTS_FILE) if r["run_id"] != run_id]
        curves = [
            r
            for r in read_csv(root / CURVES_FILE)
            if (r.get("source_run_id") or r["run_id"]) != run_id
        ]
        if row is not None:
            results.append(row)
        curves.extend(curve)
        write_tables(root, results, curves)


def write_tables(root, results: list[dict[str, str]], curves: list[dict[str, str]]) -> None:
    """results.csv, curves.csv, then tables.json with each one's row count and SHA-256."""
    files = {}
    for name, rows, columns in (
        (RESULTS_FILE, results, RESULT_COLUMNS),
        (CURVES_FILE, curves, CURVE_COLUMNS),
    ):
        text = _csv_text(rows, columns)
        write_text_atomic(root / name, text)
        files[name] = {"rows": len(rows), "sha256": hashlib.sha256(text.encode()).hexdigest()}
    write_json_atomic(root / TABLES_FILE, {"schema": TABLES_SCHEMA, "files": files})


@contextlib.contextmanager
def _table_lock(root) -> Iterator[None]:
    """An flock on DIR/.tables.lock: local workers serialise their read-modify-write."""
    if is_remote(root):
        yield  # object stores: last writer wins; `sweep table` at the end settles it
        return
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, ".tables.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
