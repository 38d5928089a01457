"""`sweep plan FILE`: the grid as a table with the time each run should take here; trains nothing.

The time estimate comes from a measured throughput: a few steps of the smallest, median and
largest model of the grid (compile excluded), interpolated in log N for the others, plus
the measured per-run overhead (setup and compilation); or from a `--throughput` in FLOP/s
(detailed convention) given by the user.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import tempfile
from collections.abc import Callable

from experiments.grid import Grid, GridPoint, format_number
from experiments.status import format_duration
from experiments.sweep_file import SweepSpec

MEASURE_STEPS = 48


@dataclasses.dataclass(frozen=True)
class Throughput:
    """Seconds per step as a function of N (or a fixed FLOP/s), plus a per-run overhead."""

    points: tuple[tuple[int, float], ...]  # (N, seconds per step), sorted by N
    overhead_s: float
    source: str
    flops_per_s: float | None = None  # a given rate in detailed FLOP/s replaces the points

    def step_seconds(self, point: GridPoint) -> float:
        if self.flops_per_s:
            return point.detailed_flops / point.steps / self.flops_per_s
        if len(self.points) == 1:
            return self.points[0][1]
        # piecewise linear in log N - log t between measured sizes, extrapolated at the ends
        i = max(
            1, min(len(self.points) - 1, bisect.bisect_left([n for n, _ in self.points], point.N))
        )
        (n0, t0), (n1, t1) = self.points[i - 1], self.points[i]
        x = (math.log(point.N) - math.log(n0)) / (math.log(n1) - math.log(n0))
        return math.exp(math.log(t0) + x * (math.log(t1) - math.log(t0)))

    def run_seconds(self, point: GridPoint) -> float:
        return self.overhead_s + point.steps * self.step_seconds(point)


def fixed_throughput(flops_per_s: float) -> Throughput:
    """A user-given rate in detailed-convention FLOP/s, no overhead."""
    return Throughput((), 0.0, f"given {flops_per_s:.3g} FLOP/s", flops_per_s=flops_per_s)


def measure_throughput(grid: Grid, log: Callable[[str], None] = print) -> Throughput:
    """Train MEASURE_STEPS steps of the smallest, median and largest model (in a temp dir)."""
    from lab.train import train

    sizes = sorted({p.N: p for p in grid.points}.values(), key=lambda p: p.N)
    ends = [sizes[i] for i in sorted({0, len(sizes) // 2, len(sizes) - 1})]
    measured, overheads = [], []
    for point in ends:
        config = point.config
        steps = max(MEASURE_STEPS, 3 * config.steps_per_call)
        short = dataclasses.replace(
            config,
            num_tokens=steps * config.tokens_per_step,
            eval_fractions=(1.0,),
            eval_batches=1,
            keep_final_checkpoint=False,
            checkpoint_every_seconds=1e9,
        )
        log(f"measuring throughput: N={point.N:,}, {steps} steps ...")
        with tempfile.TemporaryDirectory() as tmp:
            result = train(short, tmp, progress=False)
        seconds = result["throughput"].get("median_step_time_s")
        if not seconds:
            continue
        measured.append((point.N, float(seconds)))
        timing = result["timing"]
        overheads.append(timing["setup_s"] + timing["compile_and_first_steps_s"])
    if not measured:
        raise RuntimeError("throughput measurement produced no timed steps")
    return Throughput(tuple(sorted(measured)), max(overheads), "measured on this device")


def plan_table(
    spec: SweepSpec,
    grid: Grid,
    throughput: Throughput | None,
    tuning: tuple[GridPoint, ...] = (),
) -> str:
    """The grid, one line per run, then totals and the dropped points with reasons; then the
    tuning stage's runs (if any) with their FLOPs as a fraction of the study's."""
    header = (
        f"{'budget':>8} {'N':>10} {'N_nonemb':>10} {'D':>12} {'tok/N':>7} {'steps':>7} "
        f"{'epochs':>7} {'spent/C':>8} {'seed':>4} {'est.time':>9}  run_id"
    )
    lines = [
        f"sweep {spec.name}: {len(spec.budgets)} budgets, FLOP convention {spec.flop_convention}, "
        f"{len(grid.points)} runs, {len(grid.dropped)} dropped",
        header,
        "-" * len(header),
    ]
    total_seconds = 0.0
    for p in grid.points:
        seconds = throughput.run_seconds(p) if throughput else None
        total_seconds += seconds or 0.0
        epochs = f"{p.epochs:.2f}" if p.epochs is not None else "?"
        lines.append(
            f"{format_number(p.budget):>8} {p.N:>10,} {p.N_nonemb:>10,} {p.D:>12,} "
            f"{p.tokens_per_param:>7.1f} {p.steps:>7,} {epochs:>7} "
            f"{p.budget_spent / p.budget:>8.4f} {p.seed:>4} {format_duration(seconds):>9}  "
            f"{p.run_id}"
        )
    lines.append("-" * len(header))
    lines.append(
        f"total: {grid.total_flops:.3g} FLOPs ({spec.flop_convention}), "
        f"{sum(p.detailed_flops for p in grid.points):.3g} FLOPs (detailed)"
        + (
            f"; estimated {format_duration(total_seconds)} on one worker ({throughput.source})"
            if throughput
            else ""
        )
    )
    if throughput and throughput.points:
        rates = ", ".join(f"N={n:,}: {1e3 * t:.2f} ms/step" for n, t in throughput.points)
        lines.append(f"throughput: {rates}; per-run overhead {throughput.overhead_s:.1f} s")
    if grid.dropped:
        lines.append(f"dropped ({len(grid.dropped)}):")
        for d in grid.dropped:
            n = f"N={d.N:,}" if d.N else f"target {d.target_params:.3g}"
            lines.append(f"  budget {format_number(d.budget)}, {n}: {d.reason}")
    if tuning:
        lines.extend(tuning_lines(spec, grid, tuning, throughput))
    return "\n".join(lines)


def tuning_lines(
    spec: SweepSpec, grid: Grid, tuning: tuple[GridPoint, ...], throughput: Throughput | None
) -> list[str]:
    """The tuning stage: one line per run, then its FLOPs apart from (and relative to) the study."""
    header = (
        f"{'N':>10} {'peak_lr':>9} {'steps':>7} {'FLOPs':>10} {'seed':>4} {'est.time':>9}  run_id"
    )
    lines = ["", "tuning stage (runs first; main runs use the fitted LR_opt(N)):", header]
    seconds = 0.0
    for p in tuning:
        run_s = throughput.run_seconds(p) if throughput else None
        seconds += run_s or 0.0
        lines.append(
            f"{p.N:>10,} {p.config.peak_lr:>9.3g} {p.steps:>7,} {p.budget_spent:>10.3g} "
            f"{p.seed:>4} {format_duration(run_s):>9}  {p.run_id}"
        )
    flops = sum(p.budget_spent for p in tuning)
    study = grid.total_flops
    lines.append(
        f"tuning: {len(tuning)} runs, {flops:.3g} FLOPs ({spec.flop_convention}) = "
        f"{flops / study:.1%} of the study's {study:.3g} FLOPs (reported apart from the budget)"
        + (f"; estimated {format_duration(seconds)} on one worker" if throughput else "")
    )
    return lines
