"""Branching sweeps: one constant-LR trunk per model size, each IsoFLOP point a cooldown branch.

With a warmup-stable-decay schedule the stable phase does not depend on the run's length
(Hagele et al. 2024), so the S-step WSD run of a point is, step for step, a constant-LR run
up to its cooldown start s = S - round(f * S), then a cooldown. `branch_grid` turns a solved
grid into:

- per (model, seed, batch) one **trunk**, cut into **segments** that end at each distinct s
  of its branches: segment j trains s_{j-1}..s_j at the stable LR (WSD with no cooldown)
  from segment j-1's final checkpoint, and keeps its own final checkpoint (the branch
  points are never rotated away, and each segment is an ordinary resumable run);
- per point a **branch**: its own standalone WSD config (the grid's N, D, seed), which
  `lab.branch.seed_from_parent` starts from the segment that ends at its s. The branch is
  then bitwise the standalone run, so its result row keeps C of the standalone run.

Every run of a trunk shares one warmup in steps (the template's warmup fraction of the
trunk's shortest branch, or its step count), so all branches see the trunk's exact lrs.
Dependencies are run ids: the runner takes a point once its parent is finished
(`ready`), and seeds it just before training (`seed`).
"""

from __future__ import annotations

import dataclasses
import os
from collections import defaultdict

from experiments import sweep_dir
from experiments.grid import Grid, GridPoint, format_number, make_run_id
from experiments.sweep_file import SweepError, SweepSpec
from lab.errors import ConfigError
from lab.run_config import RunConfig
from lab.run_status import FINISHED, RunStatus
from lab.runtime.atomic_io import is_remote

TRUNK_PREFIX = "trunk_"


def is_branching(spec: SweepSpec) -> bool:
    return spec.strategy == "branching"


def branch_grid(spec: SweepSpec, grid: Grid) -> Grid:
    """The grid's points as trunk segments + cooldown branches (unchanged unless branching)."""
    if not is_branching(spec):
        return grid
    groups: dict[tuple, list[GridPoint]] = defaultdict(list)
    for point in grid.points:
        if point.tuning:
            raise SweepError("branch_grid takes the main grid, not tuning runs")
        key = (point.config.model, point.seed, point.config.train_batch_size)
        groups[key].append(point)
    trunks, branch_of = [], {}
    for points in groups.values():
        segments, cooled = _trunk_and_branches(points)
        trunks += segments
        branch_of.update({p.run_id: b for p, b in zip(points, cooled, strict=True)})
    branches = [branch_of[p.run_id] for p in grid.points]  # in the grid's order
    return Grid(tuple(trunks + branches), grid.dropped)


def _trunk_and_branches(points: list[GridPoint]) -> tuple[list[GridPoint], list[GridPoint]]:
    """One model size and seed: its trunk segments and its branches (with FLOPs spent)."""
    warmup = shared_warmup(points)
    configs = [_with_warmup(p.config, warmup) for p in points]
    starts = [c.num_steps - c.optimizer.cooldown_steps(c.num_steps) for c in configs]
    for point, start in zip(points, starts, strict=True):
        if start <= warmup:
            raise SweepError(
                f"point {point.run_id}: the cooldown would start at step {start}, within the "
                f"{warmup}-step warmup; lower cooldown_fraction or warmup_steps, or raise min_steps"
            )
    ends = sorted(set(starts))
    base = configs[starts.index(ends[-1])]
    per_step = points[0].flops_per_token * base.tokens_per_step
    trunk_config = _trunk_config(base, ends[-1])
    trunk = (
        f"{TRUNK_PREFIX}n{format_number(points[0].N)}_s{points[0].seed}_"
        f"{trunk_config.config_hash()[:6]}"
    )
    segments, previous = [], None
    for j, end in enumerate(ends):
        config = _trunk_config(base, end)
        start = ends[j - 1] if j else 0
        spent = per_step * (end - start)
        segments.append(
            GridPoint(
                run_id=f"{trunk}_to{end}",
                budget=per_step * end,
                seed=points[0].seed,
                extra_seed=False,
                target_params=points[0].target_params,
                config=config,
                flops_per_token=points[0].flops_per_token,
                budget_spent=per_step * end,
                epochs=None,
                lr_policy=points[0].lr_policy,
                lr_law=points[0].lr_law,
                role="trunk",
                parent=previous,
                start_step=start,
                trunk=trunk,
                flops_spent=spent,
            )
        )
        previous = segments[-1].run_id
    by_end = {s.config.num_steps: s for s in segments}
    branches = []
    for point, config, start in zip(points, configs, starts, strict=True):
        share = sum(
            s.spent / sum(1 for b in starts if b >= s.config.num_steps)
            for s in segments
            if s.config.num_steps <= start
        )
        branches.append(
            dataclasses.replace(
                point,
                run_id=make_run_id(point.budget, point.N, point.seed, config.config_hash()),
                config=config,
                role="branch",
                parent=by_end[start].run_id,
                start_step=start,
                trunk=trunk,
                flops_spent=per_step * (config.num_steps - start) + share,
            )
        )
    return segments, branches


def shared_warmup(points: list[GridPoint]) -> int:
    """Warmup steps of every run of one trunk: a fraction of its shortest branch, or steps."""
    optimizer = points[0].config.optimizer
    return optimizer.warmup_for(min(p.config.num_steps for p in points))


def _with_warmup(config: RunConfig, warmup: int) -> RunConfig:
    return dataclasses.replace(
        config, optimizer=dataclasses.replace(config.optimizer, warmup_steps=warmup)
    )


def _trunk_config(base: RunConfig, end: int) -> RunConfig:
    """A segment ending at `end`: the stable LR throughout (no cooldown), its final
    checkpoint kept (branches and the next segment start from it)."""
    return dataclasses.replace(
        base,
        num_tokens=end * base.tokens_per_step,
        optimizer=dataclasses.replace(base.optimizer, cooldown_fraction=0.0),
        keep_final_checkpoint=True,
    )


def ready(out: str | os.PathLike, point: GridPoint) -> bool:
    """A point may start once the run it branches from is finished (done, or failed: then
    seeding records the failure instead of waiting for ever)."""
    return point.parent is None or sweep_dir.run_state(out, point.parent) in FINISHED


def seed(out: str | os.PathLike, point: GridPoint, run_dir) -> None:
    """Before training a segment or branch: its first checkpoint from its parent's."""
    if point.parent is None:
        return
    from lab.branch import is_seeded, seed_from_parent

    if is_seeded(run_dir):
        return
    state = sweep_dir.run_state(out, point.parent)
    if state != RunStatus.DONE:
        raise ConfigError(f"{point.parent} is {state}, so {point.run_id} cannot branch from it")
    if is_remote(out):
        raise ConfigError("branching sweeps need a local (or mounted) --out directory")
    seed_from_parent(point.config, run_dir, sweep_dir.run_path(out, point.parent), point.start_step)


def execution_order_key(point: GridPoint) -> tuple:
    """Trunk segments first (everything waits on them), then the longest work first."""
    return (point.role != "trunk", -point.work_detailed_flops, point.run_id)
