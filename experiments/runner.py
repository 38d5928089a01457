"""The sweep runner: claim a run, train it with `lab.train.train`, record it, repeat.

Idempotent (a finished run is skipped; lab resumes a half-finished one from its checkpoint),
splittable (`worker`/`workers`: each worker starts on its own share, then helps with the
rest; claims keep any run from being trained twice at once), and parallel on one host
(`jobs` > 1 starts pinned single-threaded child workers, see experiments.jobs). Runs are
taken longest first so parallel workers finish together. A run that raises a ConfigError
(a damaged config.json included) is recorded as failed and the sweep goes on; the sweep
then exits 1 naming its failed runs. A diverged run is recorded by lab and not retried
unless asked (a diverged run is a data point, exit 0). A grid the planner dropped entirely
is refused (exit 2) with the reasons.
"""

from __future__ import annotations

import dataclasses
import socket
import sys
import time
from collections.abc import Callable

from experiments import branching, sweep_dir
from experiments.claims import ClaimStore
from experiments.context import build_grid
from experiments.grid import Grid, GridPoint
from experiments.options import RunnerOptions
from experiments.results import rebuild_tables, update_tables
from experiments.sweep_file import SweepError, SweepSpec
from lab.errors import ConfigError
from lab.exit_codes import EXIT_FAILED
from lab.run_status import FINISHED, RunStatus


@dataclasses.dataclass
class WorkerReport:
    trained: list[str] = dataclasses.field(default_factory=list)
    skipped: int = 0
    failed: list[str] = dataclasses.field(default_factory=list)
    diverged: list[str] = dataclasses.field(default_factory=list)
    exit_code: int = 0
    failures: dict[str, str] = dataclasses.field(default_factory=dict)  # the sweep's, all workers


def sweep_failures(out: str) -> dict[str, str]:
    """Every failed run of the sweep in `out` (this worker's or not) and its message."""
    failures = {}
    for point in sweep_dir.read_plan(out)["points"]:
        run_id = point["run_id"]
        if sweep_dir.run_state(out, run_id) == RunStatus.FAILED:
            failures[run_id] = sweep_dir.failure_message(out, run_id)
    return failures


def _conclude(out: str, report: WorkerReport) -> WorkerReport:
    """Exit 1 if any run of the sweep failed (named in `failures`), else the report's code."""
    report.failures = sweep_failures(out)
    if report.failures:
        report.exit_code = EXIT_FAILED
    return report


def _check_grid(grid: Grid) -> None:
    """A sweep whose every point the planner dropped would train nothing and exit 0."""
    if grid.points:
        return
    reasons: dict[str, int] = {}
    for dropped in grid.dropped:
        reasons[dropped.reason] = reasons.get(dropped.reason, 0) + 1
    listed = "; ".join(f"{reason} ({n}x)" for reason, n in list(reasons.items())[:5])
    raise SweepError(
        f"the planner dropped every grid point ({len(grid.dropped)}), nothing to train: "
        f"{listed or 'no points at all'}. See `scaling-lab sweep plan FILE`; change the "
        "budgets or the size ladder"
    )


def prepare(sweep_path: str, out: str, *, check_memory: bool = True) -> tuple[SweepSpec, Grid]:
    """Adopt the sweep file into DIR, solve the grid on this machine, write DIR/plan.json."""
    spec = sweep_dir.adopt_sweep_file(out, sweep_path)
    grid, _ = build_grid(spec, check_memory=check_memory)
    if spec.tuning is None:  # with tuning, branches are laid out once the LR law is known
        grid = branching.branch_grid(spec, grid)
    sweep_dir.write_plan(out, grid, spec)
    return spec, grid


def run_sweep(sweep_path: str, out: str, options: RunnerOptions) -> WorkerReport:
    """`scaling-lab sweep run`: this worker's part of the sweep (all of it for one worker)."""
    if options.jobs == 0:
        from experiments.jobs import auto_jobs

        options = dataclasses.replace(options, jobs=auto_jobs())
    # A parent of child jobs never starts JAX (the memory check would): children fork cleanly
    # and, on a GPU host, the parent holds no device memory. Each child checks memory itself.
    spec, grid = prepare(sweep_path, out, check_memory=options.jobs == 1)
    _check_grid(grid)
    stages = 1 if spec.tuning is None else 2
    options = dataclasses.replace(
        options, jobs=max(1, min(options.jobs, stages * len(grid.points)))
    )
    if options.jobs > 1:
        from experiments.jobs import run_jobs

        code = run_jobs(out, options)
        rebuild_tables(out)
        return _conclude(out, WorkerReport(exit_code=code))
    report = WorkerReport()
    if spec.tuning is not None:
        grid, tuning = run_tuning_stage(out, spec, grid, options, report)
        if grid is None:  # --no-wait and others still tune: nothing of the main stage yet
            return _conclude(out, report)
    main = worker_loop(out, spec, grid, options)
    report.trained += main.trained
    report.failed += main.failed
    report.diverged += main.diverged
    report.skipped += main.skipped
    if all_finished(out, grid) and (spec.tuning is None or all_finished(out, tuning)):
        rebuild_tables(out)
    return _conclude(out, report)


def run_tuning_stage(
    out: str,
    spec: SweepSpec,
    grid: Grid,
    options: RunnerOptions,
    report: WorkerReport,
    loop: Callable[[str, SweepSpec, Grid, RunnerOptions], WorkerReport] | None = None,
) -> tuple[Grid | None, Grid]:
    """Train the tuning runs (waiting for other workers' ones), fit the LR law, and return the
    main grid with its LRs (None if this worker may not wait and tuning is unfinished).

    `loop` trains a grid's runs (default `worker_loop`; the Ray executor passes its own).
    """
    from experiments import tuning

    tuning_grid = tuning.tuning_grid(spec, grid)
    sweep_dir.write_plan(out, Grid(tuning_grid.points + grid.points, grid.dropped), spec)
    first = (loop or worker_loop)(out, spec, tuning_grid, options)
    report.trained += first.trained
    report.failed += first.failed
    report.diverged += first.diverged
    report.skipped += first.skipped
    if not all_finished(out, tuning_grid):
        print("tuning runs still running on other workers; rerun to continue", flush=True)
        return None, tuning_grid
    law = tuning.resolve_law(out, list(tuning_grid.points))
    main = branching.branch_grid(spec, tuning.apply_law(grid, law))
    sweep_dir.write_plan(out, Grid(tuning_grid.points + main.points, grid.dropped), spec)
    print(f"tuning done: {law.describe()}", flush=True)
    return main, tuning_grid


def execution_order(grid: Grid, worker: int, workers: int) -> list[GridPoint]:
    """Longest runs first (a branching sweep's trunks before all); this worker's share
    (every `workers`-th) before the others'."""
    by_cost = sorted(grid.points, key=branching.execution_order_key)
    own = [p for i, p in enumerate(by_cost) if i % workers == worker]
    rest = [p for i, p in enumerate(by_cost) if i % workers != worker]
    return own + rest


def worker_loop(out: str, spec: SweepSpec, grid: Grid, options: RunnerOptions) -> WorkerReport:
    """Claim and train runs until none is left (waiting for other workers' runs if asked).

    With several JAX processes (a TPU pod slice, `--distributed`), all processes train the
    same run at the same time: process 0 claims and chooses, and broadcasts its choice.
    """
    name = options.worker_name or f"w{options.worker}"
    multi = _process_count() > 1
    leader = not multi or _process_index() == 0
    claims = ClaimStore(
        out, name, timeout_s=options.claim_timeout_s, heartbeat_s=options.heartbeat_s
    )
    if leader:
        claims.start_heartbeat()
    report = WorkerReport()
    order = execution_order(grid, options.worker, options.workers)
    since = float(int(time.time()))  # whole seconds, like finished_at: retries apply to runs
    # that ended before this invocation, never to one it ran itself
    try:
        if leader and not multi and _packs(spec, grid):
            _packed(out, spec, grid, order, claims, options, since, name, report)
            return _skipped(report, grid)
        while True:
            choice = _choose(out, order, claims, options, since) if leader else 0
            if multi:
                choice = _broadcast(choice)
            if choice == DONE:
                break
            if choice == WAIT:
                time.sleep(min(options.heartbeat_s, 2.0))
                continue
            points = [order[choice]]
            if leader and not multi:  # runs of this one's shape, trained with it (grouping)
                points += [
                    order[i] for i in _companions(spec, order, choice, claims, options, out, since)
                ]
            try:
                if len(points) > 1:
                    from experiments.grouping import run_group

                    run_group(out, spec, points, options, report)
                else:
                    run_one(out, spec, points[0], options, report, since, leader)
            finally:
                if leader:
                    for point in points:
                        claims.release(point.run_id)
            if leader:
                for point in points:
                    publish(out, grid, point, name)
    finally:
        claims.stop()
    return _skipped(report, grid)


def _skipped(report: WorkerReport, grid: Grid) -> WorkerReport:
    report.skipped = len(grid.points) - len(report.trained) - len(report.failed)
    return report


DONE, WAIT = -1, -2


def _packs(spec: SweepSpec, grid: Grid) -> bool:
    """[packing] gives some run fewer devices than this process has (JAX asked only then)."""
    if spec.packing.devices_per_run == "all":
        return False
    import jax

    from experiments.packed_loop import packing_applies

    return packing_applies(spec, list(grid.points), jax.device_count())


def _packed(
    out: str,
    spec: SweepSpec,
    grid: Grid,
    order: list[GridPoint],
    claims: ClaimStore,
    options: RunnerOptions,
    since: float,
    name: str,
    report: WorkerReport,
) -> None:
    """The worker loop with runs side by side on sub-meshes (experiments.packed_loop)."""
    import jax

    from experiments.packed_loop import packed_loop

    devices = jax.devices()

    def finish(point: GridPoint, trained: bool) -> None:
        claims.release(point.run_id)
        if trained:
            publish(out, grid, point, name)

    packed_loop(
        choose=lambda: _choose(out, order, claims, options, since),
        order=order,
        devices_needed=lambda p: spec.packing.devices_for(
            p.N, len(devices), p.config.train_batch_size
        ),
        train_on=lambda p, block: run_one(out, spec, p, options, report, since, devices=block),
        finish=finish,
        devices=devices,
        idle_wait_s=min(options.heartbeat_s, 2.0),
        done=DONE,
    )


def _choose(
    out: str, order: list[GridPoint], claims: ClaimStore, options: RunnerOptions, since: float
) -> int:
    """Index in `order` of the next run this worker now holds a claim on, or DONE / WAIT."""
    pending = [i for i, p in enumerate(order) if not is_finished(out, p, options, since)]
    if not pending:
        return DONE
    for i in pending:
        if not branching.ready(out, order[i]):  # its trunk has not reached its start yet
            continue
        if is_finished(out, order[i], options, since) or not claims.try_claim(order[i].run_id):
            continue
        if is_finished(out, order[i], options, since):  # finished between check and claim
            claims.release(order[i].run_id)
            continue
        return i
    return WAIT if options.wait else DONE


def _companions(
    spec: SweepSpec,
    order: list[GridPoint],
    choice: int,
    claims: ClaimStore,
    options: RunnerOptions,
    out: str,
    since: float,
) -> list[int]:
    from experiments.grouping import claim_companions

    return claim_companions(
        spec.packing,
        order,
        choice,
        pending=lambda p: not is_finished(out, p, options, since),
        try_claim=claims.try_claim,
    )


def _process_count() -> int:

    if "jax" not in sys.modules:  # never start JAX just to ask
        return 1
    import jax

    return jax.process_count()


def _process_index() -> int:
    import jax

    return jax.process_index()


def _broadcast(choice: int) -> int:
    import numpy as np
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.int32(choice)))


def is_finished(out: str, point: GridPoint, options: RunnerOptions, since: float) -> bool:
    """Finished, unless a retry flag asks again for a run that ended before `since`."""
    state = sweep_dir.run_state(out, point.run_id)
    retry = (state == RunStatus.DIVERGED and options.retry_diverged) or (
        state == RunStatus.FAILED and options.retry_failed
    )
    if retry and sweep_dir.finished_at(out, point.run_id) < since:
        return False
    return state in FINISHED


def run_one(
    out: str,
    spec: SweepSpec,
    point: GridPoint,
    options: RunnerOptions,
    report: WorkerReport,
    since: float,
    leader: bool = True,
    devices: list | None = None,
) -> None:
    """Train one claimed run (retrying a diverged/failed one if asked); record a failure.

    Only the leader (process 0) touches the sweep's files; every process trains. `devices`:
    the run's sub-mesh when runs are packed (default: all of them).
    """
    from lab.train import train

    if leader:
        sweep_dir.prepare_for_training(out, point, spec.flop_convention)
    try:
        run_dir = sweep_dir.run_path(out, point.run_id)  # local or gs://: lab writes it there
        branching.seed(out, point, run_dir)  # a trunk segment or branch: from its parent
        result = train(
            point.config,
            run_dir,
            progress=options.progress,
            compilation_cache=options.compilation_cache,
            devices=devices,
        )
    except ConfigError as error:
        if leader:
            sweep_dir.write_failure(out, point.run_id, str(error), socket.gethostname())
        report.failed.append(point.run_id)
        return
    report.trained.append(point.run_id)
    if result["status"] == RunStatus.DIVERGED:
        report.diverged.append(point.run_id)


def all_finished(out: str, grid: Grid) -> bool:
    return all(sweep_dir.run_state(out, p.run_id) in FINISHED for p in grid.points)


def publish(out: str, grid: Grid, point: GridPoint, worker: str) -> None:
    """A run this worker ended: its rows into the tables, and its line."""
    update_tables(out, point.run_id)
    announce(out, grid, point, worker)


def announce(out: str, grid: Grid, point: GridPoint, worker: str) -> None:
    """One line per finished run: what it reached and how far the sweep is."""
    from experiments.status import sweep_progress

    state = sweep_dir.run_state(out, point.run_id)
    line = _describe(out, point, state)
    progress = sweep_progress(out)
    print(
        f"[{worker}] {progress['finished']}/{progress['total']} {point.run_id} {line} | "
        f"{progress['flops_fraction']:.0%} of FLOPs, ETA {progress['eta_text']}",
        flush=True,
    )


def _describe(out: str, point: GridPoint, state: RunStatus) -> str:
    if state == RunStatus.FAILED:
        return f"FAILED: {sweep_dir.failure_message(out, point.run_id)}"
    if state not in FINISHED:
        return f"{state.upper()}: no readable result"
    result = sweep_dir.read_result(out, point.run_id)
    if state == RunStatus.DIVERGED:
        return f"DIVERGED: {result['divergence']['reason']}"
    seconds = result.get("timing", {}).get("total_s", 0.0)
    return f"loss {result['loss']:.4f} ({point.steps} steps, {seconds:.1f} s)"
