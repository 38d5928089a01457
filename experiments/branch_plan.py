"""`sweep plan` of a branching sweep: its trunks, its branches, and the FLOPs branching saves.

The independent grid's table (plan.py) still comes first: its N, D and C are every branch's,
since a branch is bitwise the standalone WSD run of its point. These lines add what is
actually trained: each trunk once (cut at each branch start), each branch's cooldown.
"""

from __future__ import annotations

from collections import defaultdict

from experiments.grid import Grid, GridPoint, format_number
from experiments.plan import Throughput
from experiments.status import format_duration
from experiments.sweep_file import SweepSpec


def work_seconds(point: GridPoint, throughput: Throughput | None) -> float | None:
    """Estimated time of the steps a trunk segment or branch trains itself."""
    if throughput is None:
        return None
    return throughput.overhead_s + point.work_steps * throughput.step_seconds(point)


def branch_plan_lines(
    spec: SweepSpec,
    independent: Grid,
    branched: Grid,
    throughput: Throughput | None,
    tuning: tuple[GridPoint, ...] = (),
) -> list[str]:
    """Trunks, branches, and the FLOPs (and estimated time) against one run per point."""
    segments: dict[str, list[GridPoint]] = defaultdict(list)
    branches = [p for p in branched.points if p.role == "branch"]
    for p in branched.points:
        if p.role == "trunk":
            segments[p.trunk].append(p)
    cooldown = spec.template["optimizer"].get("cooldown_fraction", 0.2)
    lines = [
        "",
        f"branching: {len(segments)} trunks at the stable LR, {len(branches)} cooldown "
        f"branches ({cooldown:g} of each run's steps, "
        f"{spec.template['optimizer'].get('cooldown_shape', '1-sqrt')} shape)",
        f"{'trunk':>28} {'N':>10} {'seed':>4} {'steps':>7} {'FLOPs':>10} {'est.time':>9}  "
        "checkpoints kept at (branch starts)",
    ]
    trunk_seconds = 0.0
    for trunk, parts in segments.items():
        seconds = [work_seconds(p, throughput) for p in parts]
        trunk_seconds += sum(s or 0.0 for s in seconds)
        head = parts[0]
        lines.append(
            f"{trunk:>28} {head.N:>10,} {head.seed:>4} {parts[-1].steps:>7,} "
            f"{sum(p.spent for p in parts):>10.3g} "
            f"{format_duration(sum(s or 0.0 for s in seconds) if throughput else None):>9}  "
            + ", ".join(str(p.steps) for p in parts)
        )
    lines.append(
        f"{'budget':>8} {'N':>10} {'seed':>4} {'steps':>7} {'start':>7} {'cooldown':>8} "
        f"{'C':>10} {'spent':>10} {'est.time':>9}  run_id"
    )
    branch_seconds = 0.0
    for p in sorted(branches, key=lambda b: (b.budget, b.N, b.seed)):
        seconds = work_seconds(p, throughput)
        branch_seconds += seconds or 0.0
        lines.append(
            f"{format_number(p.budget):>8} {p.N:>10,} {p.seed:>4} {p.steps:>7,} "
            f"{p.start_step:>7,} {p.work_steps:>8,} {p.budget_spent:>10.3g} {p.spent:>10.3g} "
            f"{format_duration(seconds):>9}  {p.run_id}"
        )
    standalone, spent = independent.total_flops, branched.spent_flops
    lines.append(
        f"FLOPs ({spec.flop_convention}): {spent:.3g} trained by branching vs {standalone:.3g} "
        f"for one run per point = {spent / standalone:.1%} ({1 - spent / standalone:.1%} saved)"
    )
    if tuning:
        extra = sum(p.budget_spent for p in tuning)
        lines.append(
            f"with the tuning stage ({extra:.3g}, the same either way): {spent + extra:.3g} vs "
            f"{standalone + extra:.3g} = {(spent + extra) / (standalone + extra):.1%}"
        )
    if throughput:
        alone = sum(throughput.run_seconds(p) for p in independent.points)
        ours = trunk_seconds + branch_seconds
        steps_ours = sum(p.work_steps * throughput.step_seconds(p) for p in branched.points)
        steps_alone = sum(p.steps * throughput.step_seconds(p) for p in independent.points)
        lines.append(
            f"estimated time on one worker: {format_duration(ours)} (trunks "
            f"{format_duration(trunk_seconds)}, branches {format_duration(branch_seconds)}) vs "
            f"{format_duration(alone)} for one run per point; the longest trunk "
            f"({format_duration(max((sum(work_seconds(p, throughput) or 0.0 for p in parts) for parts in segments.values()), default=0.0))}) "
            "bounds the time with many workers"
        )
        lines.append(
            f"in training steps alone: {format_duration(steps_ours)} vs "
            f"{format_duration(steps_alone)}; the rest is the measured per-run overhead "
            f"({throughput.overhead_s:.1f} s, setup and compilation), charged to each of "
            f"{len(branched.points)} vs {len(independent.points)} runs, though a worker's "
            "later runs of a shape reuse its compiled step"
        )
    return lines
