"""A sweep (or one run) planned for a TPU slice it will run on, from XLA's own compilation.

`sweep plan FILE --target v5p-128` and `compile SOURCE --target ...`: every distinct shape of
the grid (model, batch, mesh) is compiled once for the target on this CPU host
(`lab.aot.compile_step`); each run then gets XLA's per-device memory against HBM, its
estimated step time, and so its hours and chip-hours. A shape that cannot fit is dropped with
the numbers. Everything here is an estimate from XLA's cost model, labelled as such.

The grid is solved without loading the corpus (a planning host has no C4): the vocabulary
comes from the tokenizer spec, and the epochs check waits for the real run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from experiments.grid import Grid, GridPoint, format_number, solve_grid
from experiments.status import format_duration
from experiments.sweep_file import SweepSpec
from lab.data.config import tokenizer_vocab
from lab.data.tokenizers import ByteTokenizer
from lab.memory import format_bytes
from lab.run_config import RunConfig


@dataclasses.dataclass(frozen=True)
class TargetPlan:
    """The grid's runs with XLA's figures for their shapes, and the shapes that do not fit."""

    target: str
    reports: dict[tuple, object]  # shape key -> lab.aot.CompileReport
    points: tuple[GridPoint, ...]  # runs that fit
    dropped: tuple[tuple[GridPoint, str], ...]  # runs that do not, with the reason

    def report_for(self, point: GridPoint):
        return self.reports[shape_key(point.config)]

    @property
    def chip_hours(self) -> float:
        return sum(self.report_for(p).chip_hours for p in self.points)

    @property
    def hours(self) -> float:
        return sum(self.report_for(p).run_hours for p in self.points)


def declared_vocab_size(tokenizer: str) -> int:
    """The vocabulary a tokenizer spec promises, without building it (bytes: 259)."""
    return tokenizer_vocab(tokenizer) or ByteTokenizer.vocab_size


def grid_without_corpus(spec: SweepSpec) -> Grid:
    """The sweep's grid, with the vocabulary from `[model] vocab_size` or the tokenizer spec."""
    vocab = spec.template["model"].get("vocab_size") or declared_vocab_size(
        spec.template["data"].get("tokenizer", "byte")
    )
    return solve_grid(spec, vocab_size=int(vocab), train_tokens=None, memory_check=None)


def shape_key(config: RunConfig) -> tuple:
    """What the compiled step depends on: model, batch, mesh (not D, LR or seed)."""
    return (config.model, config.train_batch_size, config.mesh)


def plan_on_target(
    points: tuple[GridPoint, ...] | list[GridPoint],
    target: str,
    log: Callable[[str], None] = print,
) -> TargetPlan:
    """Compile each distinct shape of `points` once for `target`; keep the runs that fit."""
    from lab.aot import compile_step

    reports: dict[tuple, object] = {}
    kept, dropped = [], []
    for point in points:
        key = shape_key(point.config)
        if key not in reports:
            log(f"compiling N={point.N:,} (batch {point.config.train_batch_size}) for {target} ...")
            reports[key] = compile_step(point.config, target)
        report = reports[key]
        if report.fits:
            kept.append(point)
        else:
            dropped.append((point, _over_memory(report)))
    return TargetPlan(target, reports, tuple(kept), tuple(dropped))


def _over_memory(report) -> str:
    return (
        f"does not fit: XLA needs {format_bytes(report.peak_bytes)} per device "
        f"(arguments {format_bytes(report.argument_bytes)}, temporaries "
        f"{format_bytes(report.temp_bytes)}) of {format_bytes(report.hbm_bytes)} HBM; "
        "enable scan_layers/remat, add microbatches, or shard over more fsdp"
    )


def shape_lines(plan: TargetPlan) -> list[str]:
    """One line per compiled shape: memory, FLOPs check, estimated speed."""
    lines = [
        f"per shape on {plan.target} (XLA's compilation and cost model: estimates, not "
        "measurements):",
        f"{'N':>14} {'batch':>6} {'mesh':>12} {'HBM/device':>22} {'fits':>4} "
        f"{'XLA/lab FLOPs':>13} {'step':>9} {'tokens/s':>10} {'est. MFU':>8} {'compile':>8}",
    ]
    for report in plan.reports.values():
        mesh = "x".join(str(v) for v in report.mesh.values())
        memory = f"{format_bytes(report.peak_bytes)} / {format_bytes(report.hbm_bytes)}"
        lines.append(
            f"{report.params:>14,} {report.batch_size:>6} {mesh:>12} {memory:>22} "
            f"{'yes' if report.fits else 'NO':>4} {report.flops_ratio:>13.3f} "
            f"{1e3 * report.step_seconds:>7.1f}ms {report.tokens_per_second:>10.4g} "
            f"{report.mfu:>8.1%} {report.compile_seconds:>7.1f}s"
        )
    return lines


def plan_lines(spec: SweepSpec, plan: TargetPlan) -> str:
    """The sweep's runs on the target, chip-hours and dropped runs, after the shape table."""
    lines = shape_lines(plan)
    lines += ["", f"{'budget':>8} {'N':>14} {'steps':>8} {'est. hours':>10} {'chip-hours':>10}"]
    for p in plan.points:
        report = plan.report_for(p)
        lines.append(
            f"{format_number(p.budget):>8} {p.N:>14,} {p.steps:>8,} "
            f"{report.run_hours:>10.3g} {report.chip_hours:>10.4g}"
        )
    lines.append(
        f"sweep {spec.name} on {plan.target}: {len(plan.points)} runs, estimated "
        f"{format_duration(3600 * plan.hours)} and {plan.chip_hours:,.0f} chip-hours "
        "(XLA estimates; no communication time, no evals or checkpoints)"
    )
    for point, reason in plan.dropped:
        lines.append(f"  dropped: budget {format_number(point.budget)}, N={point.N:,}: {reason}")
    return "\n".join(lines)
