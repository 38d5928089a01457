"""`sweep status DIR`: runs done / running / left, FLOPs done vs total, estimated time left.

Reads only files (plan.json, result.json, claims, the tail of metrics.jsonl): no JAX, cheap
enough to poll. The ETA divides the FLOPs left by the rate finished runs achieved per worker
(wall time, overheads included) times the number of workers running now.
"""

from __future__ import annotations

import os
from typing import Any

from experiments import sweep_dir
from experiments.claims import ClaimStore
from lab.run_status import FINISHED, RunStatus

STATUS_SCHEMA_VERSION = 1  # of `sweep status --json`: bump when a key changes meaning


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def sweep_progress(root: str | os.PathLike) -> dict[str, Any]:
    """Counts, FLOPs (sweep convention) and ETA of the sweep in `root`."""
    plan = sweep_dir.read_plan(root)
    claims = ClaimStore(root, "status").live_claims()
    counts: dict[str, int] = {status: 0 for status in sorted(FINISHED)}
    counts.update(running=0, left=0)
    damaged: list[str] = []
    flops_total = flops_done = 0.0
    rate_flops = rate_seconds = 0.0
    running: list[dict[str, Any]] = []
    for point in plan["points"]:
        run_id = point["run_id"]
        cost = float(point.get("work_flops", point["budget_spent"]))  # a branch: its cooldown
        flops_total += cost
        state = sweep_dir.run_state(root, run_id)
        if state == RunStatus.DAMAGED:
            damaged.append(run_id)  # unfinished: counted as running or left below
        if state in FINISHED:
            counts[state] += 1
            flops_done += cost
            if state == RunStatus.DONE:
                result = sweep_dir.read_result(root, run_id)
                rate_flops += cost
                rate_seconds += float(result.get("timing", {}).get("total_s", 0.0))
        elif run_id in claims:
            counts["running"] += 1
            step = sweep_dir.last_metrics_step(root, run_id)
            start = int(point.get("start_step", 0))
            fraction = min(1.0, max(0, step - start) / max(1, int(point["steps"]) - start))
            flops_done += cost * fraction
            running.append(
                {"run_id": run_id, "worker": claims[run_id]["worker"], "fraction": fraction}
            )
        else:
            counts["left"] += 1
    rate = rate_flops / rate_seconds if rate_seconds > 0 else None
    concurrency = max(1, counts["running"])
    eta = (flops_total - flops_done) / (rate * concurrency) if rate else None
    finished = sum(counts[status] for status in FINISHED)
    return {
        "schema_version": STATUS_SCHEMA_VERSION,
        "dir": str(root),
        **counts,
        "damaged": damaged,
        "total": len(plan["points"]),
        "finished": finished,
        "dropped": len(plan["dropped"]),
        "flops_done": flops_done,
        "flops_total": flops_total,
        "flops_fraction": flops_done / flops_total if flops_total else 1.0,
        "eta_s": eta if finished < len(plan["points"]) else 0.0,
        "eta_text": format_duration(eta if finished < len(plan["points"]) else 0.0),
        "running_runs": running,
        "flops_per_s_per_worker": rate,
    }


def format_status(root: str | os.PathLike) -> str:
    p = sweep_progress(root)
    lines = [
        f"sweep {root}: {p['finished']}/{p['total']} finished "
        f"({p['done']} done, {p['diverged']} diverged, {p['failed']} failed), "
        f"{p['running']} running, {p['left']} left, {p['dropped']} dropped by the planner",
        f"FLOPs: {p['flops_done']:.3g} of {p['flops_total']:.3g} ({p['flops_fraction']:.1%}); "
        f"ETA {p['eta_text']}"
        + (
            f" at {p['flops_per_s_per_worker']:.3g} FLOP/s per worker"
            if p["flops_per_s_per_worker"]
            else ""
        ),
    ]
    for run in p["running_runs"]:
        lines.append(f"  running {run['run_id']} on {run['worker']}: {run['fraction']:.0%}")
    for run_id in p["damaged"]:
        lines.append(
            f"  damaged {run_id}: its result.json cannot be read; unfinished, and "
            "`sweep run` trains it again"
        )
    return "\n".join(lines)
