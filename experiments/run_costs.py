"""What each run directory of a sweep cost: `costs.csv`, one row per run directory.

results.csv has a row per grid point, which is what every fit needs, but not per piece of
work: a branching sweep's trunk segments train FLOPs that no row of results.csv holds. This
ledger has them all (LR-tuning runs, standalone runs, trunk segments, branches), so the
FLOPs and time a sweep spent can be summed from plain files, by `analysis.branching_study`
among others, without reading run directories:

    run_id, role (run | trunk | branch), tuning, trunk, N, start_step, steps,
    flops_C (the sweep convention's C of the row's point; empty for a trunk segment),
    work_flops (what this directory itself trained: a branch's cooldown, a segment's steps),
    total_s (the run's wall time, compilation and evals included), finished_at

`scaling-lab sweep export` writes it into a study's data folder.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from experiments.sweep_dir import read_run, runs_root
from lab import run_dir

COSTS_FILE = "costs.csv"
COST_COLUMNS = (
    "run_id",
    "role",
    "tuning",
    "trunk",
    "N",
    "start_step",
    "steps",
    "flops_C",
    "work_flops",
    "total_s",
    "finished_at",
)


def cost_row(point: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """One finished run directory's row (its sweep_point.json and result.json)."""
    role = point.get("role") or "run"
    return {
        "run_id": point["run_id"],
        "role": role,
        "tuning": bool(point.get("tuning", False)),
        "trunk": point.get("trunk") or "",
        "N": point["N"],
        "start_step": point.get("start_step") or 0,
        "steps": result.get("steps", point.get("steps")),
        "flops_C": "" if role == "trunk" else point["budget_spent"],
        "work_flops": point.get("work_flops", point["budget_spent"]),
        "total_s": float(result.get("timing", {}).get("total_s", 0.0)),
        "finished_at": result.get("provenance", {}).get("finished_at", ""),
    }


def cost_rows(sweep: Path) -> list[dict[str, Any]]:
    """Rows of every finished run directory under the sweep's runs/, by run id."""
    runs = runs_root(sweep)
    rows = []
    for run in sorted(runs.iterdir()) if runs.exists() else []:
        try:
            point, result = read_run(run)
        except run_dir.DamagedRunError:
            continue  # the sweep retrains it (and export refuses the sweep)
        if point is not None and result is not None:  # a finished run
            rows.append(cost_row(point, result))
    return rows


def costs_csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()
