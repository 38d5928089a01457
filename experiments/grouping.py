"""The sweep's `[packing]` table: which runs train together (`lab.group_train`) and on how
many devices each run trains (`lab.packing`); the runner's, `sweep plan`'s and `sweep
verify`'s side of both.

    [packing]
    group = "auto"            # "auto" (default): group runs of one shape below the threshold;
                              # "always": group every shape; "never": one run at a time
    group_max_params = 1e5    # optional: the threshold ("auto"); default: the measured one
    max_group_size = 8        # members per group at most
    devices_per_run = "all"   # "all" (default), an int, "rule" (params_per_device), or a
                              # table {"1e5" = 2, "1e6" = 4}: a run of N <= key gets that many
    params_per_device = 2.5e5 # the rule: N / params_per_device devices, up to a power of two

Grouping helps where a model is too small to keep the hardware busy; the "auto" threshold is
MEASURED by `bench/packing.py` (bench/results/packing.json: grouped vs one-by-one wall time
per size) and recorded, with its source, in every member's `provenance.group`. On this
project's 2-core CPU grouping never helped (a step R times larger costs more per token on a
CPU core, bench/group_scaling.py, vmap or not), so "auto" groups nothing there; set `group_max_params` from the bench on
an accelerator host, or `group = "always"`. A group's members are claimed together by one worker; `sweep verify`
re-runs a grouped run's whole group the way it was trained, so it matches bitwise.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

from experiments import sweep_dir
from experiments.grid import GridPoint, format_number
from experiments.packing_spec import PackingSpec
from lab.errors import ConfigError
from lab.run_status import RunStatus
from lab.runtime.atomic_io import as_path


def groupable(spec: PackingSpec, point: GridPoint) -> bool:
    return point.N <= spec.threshold()[0] and spec.max_group_size > 1


def claim_companions(
    spec: PackingSpec,
    order: list[GridPoint],
    choice: int,
    pending: Callable[[GridPoint], bool],
    try_claim: Callable[[str], bool],
) -> list[int]:
    """Indices of other unfinished runs of `order[choice]`'s shape this worker now holds a
    claim on, to train with it as one group (none when grouping does not help)."""
    from lab.group_step import group_key

    first = order[choice]
    if not groupable(spec, first):
        return []
    key = group_key(first.config)
    chosen: list[int] = []
    for i, point in enumerate(order):
        if len(chosen) + 1 >= spec.max_group_size:
            break
        if i == choice or group_key(point.config) != key or not pending(point):
            continue
        if try_claim(point.run_id):
            chosen.append(i)
    return chosen


def run_group(
    out: str, sweep_spec: Any, points: list[GridPoint], options: Any, report: Any
) -> None:
    """`runner.run_one` for a group: prepare each member's directory, train them together,
    record a ConfigError as every member's failure."""
    from lab.group_train import train_group

    spec: PackingSpec = sweep_spec.packing
    for point in points:
        sweep_dir.prepare_for_training(out, point, sweep_spec.flop_convention)
    limit, source = spec.threshold()
    record = {
        "run_ids": [p.run_id for p in points],
        "threshold_params": limit if limit != float("inf") else None,
        "threshold_source": source,
    }
    try:
        results = train_group(  # local or gs://: lab writes each run directory where it is
            [p.config for p in points],
            [sweep_dir.run_path(out, p.run_id) for p in points],
            progress=options.progress,
            compilation_cache=options.compilation_cache,
            record=record,
        )
    except ConfigError as error:
        for point in points:
            sweep_dir.write_failure(out, point.run_id, str(error), socket.gethostname())
            report.failed.append(point.run_id)
        return
    for point, result in zip(points, results, strict=True):
        report.trained.append(point.run_id)
        if result["status"] == RunStatus.DIVERGED:
            report.diverged.append(point.run_id)


def retrain_as_recorded(root: str | os.PathLike, recorded: dict[str, Any], config, target):
    """`sweep verify`'s re-run: a grouped run re-runs its whole group (each member from its
    run directory's config.json) into DIR/verify/<run_id>.group/; others train alone."""
    import shutil

    from lab import run_dir
    from lab.train import train

    group = recorded.get("provenance", {}).get("group")
    if not group or not group.get("run_ids"):
        return train(config, target, progress=False)
    from lab.group_train import train_group

    run_ids = group["run_ids"]
    configs = [run_dir.read_config(sweep_dir.run_path(root, r)) for r in run_ids]
    base = as_path(target).parent / f"{as_path(target).name}.group"
    shutil.rmtree(base, ignore_errors=True)
    results = train_group(configs, [base / r for r in run_ids], progress=False)
    return results[group["index"]]


def plan_lines(spec: PackingSpec, points: list[GridPoint], total_devices: int) -> list[str]:
    """`sweep plan`'s packing section: the groups a worker forms and each run's devices."""
    from lab.group_step import group_key

    limit, source = spec.threshold()
    shown = "none" if limit == 0 else "any" if limit == float("inf") else f"N <= {limit:.3g}"
    lines = ["", f"packing: groups of one shape ({shown}, from {source}), at most "
             f"{spec.max_group_size} runs; {total_devices} device(s)"]  # fmt: skip
    groups: dict[tuple, list[GridPoint]] = {}
    for point in points:
        # the tuning stage trains before the main one: no group spans both
        stage = point.tuning
        key = (stage, group_key(point.config)) if groupable(spec, point) else (point.run_id,)
        groups.setdefault(key, []).append(point)
    rows: dict[int, list[int]] = {}  # N -> [runs, groups, alone]
    for members in groups.values():
        row = rows.setdefault(members[0].N, [0, 0, 0])
        row[0] += len(members)
        if len(members) > 1:
            row[1] += -(-len(members) // spec.max_group_size)
        else:
            row[2] += 1
    header = (
        f"{'N':>10} {'runs':>5} {'groups':>6} {'alone':>5} {'devices/run':>11} {'side by side':>12}"
    )
    lines.append(header)
    batches = {p.N: p.config.train_batch_size for p in points}
    for n, (runs, n_groups, alone) in sorted(rows.items()):
        devices = spec.devices_for(n, total_devices, batches[n])
        lines.append(
            f"{format_number(n):>10} {runs:>5} {n_groups:>6} {alone:>5} {devices:>11} "
            f"{total_devices // devices:>12}"
        )
    grouped = sum(runs - alone for runs, _, alone in rows.values())
    lines.append(
        f"{grouped} of {len(points)} runs train in {sum(r[1] for r in rows.values())} groups; "
        "a group is one vmapped step (lab.group_train); side by side: runs (or groups) at "
        "once on the sub-meshes (experiments.packed_loop; on CPU, --jobs)"
    )
    return lines


def total_devices() -> int:
    import jax

    return jax.device_count()
