"""`scaling-lab sweep run FILE --out DIR --executor ray`: every run of the sweep is a Ray task.

The driver solves the grid (`runner.prepare`), connects to the cluster, refuses runs that no
nodes can hold, and submits every unfinished run, longest first, with the resources the
sweep file's `[resources]` table names for its size (experiments.resources); a run over
several hosts goes as a placement group (experiments.ray_submit). With a `[tuning]` stage,
the tuning runs go first and the LR law is fitted here, on the driver
(`runner.run_tuning_stage`), before any main run is submitted.

The run directories stay the one source of truth: what is finished is read from them, so
the driver can die and be restarted at any time. A restarted driver submits only unfinished
runs, and holds back a run whose claim is live (a task of another driver still trains it)
until that claim is released or goes stale. The tables (`results.csv`, `curves.csv`) are
updated as runs finish and rebuilt at the end by the same code as the local executor's.
"""

from __future__ import annotations

import time
from typing import Any

from experiments import ray_cluster
from experiments.claims import ClaimStore
from experiments.grid import Grid, GridPoint
from experiments.options import RunnerOptions
from experiments.ray_tasks import RunTask
from experiments.results import rebuild_tables
from experiments.runner import (
    WorkerReport,
    all_finished,
    execution_order,
    is_finished,
    prepare,
    publish,
    run_tuning_stage,
)
from experiments.sweep_file import SweepSpec
from lab.errors import ConfigError

WORKER = "ray"
POLL_S = 1.0


def run_sweep_ray(
    sweep_path: str, out: str, options: RunnerOptions, address: str | None = None
) -> WorkerReport:
    """The whole sweep on the Ray cluster at `address` (None: a private one on this host)."""
    if options.workers != 1:
        raise ConfigError(
            "--executor ray schedules the whole sweep from one driver; drop --worker/--workers"
        )
    spec, grid = prepare(sweep_path, out, check_memory=False)  # each task checks its memory
    if spec.strategy == "branching":  # tasks are independent there; branches wait on trunks
        raise ConfigError(
            'strategy = "branching" runs with the local runner (--jobs, --worker/--workers), '
            "not --executor ray yet"
        )
    dashboard = ray_cluster.connect(address)
    ray = ray_cluster.import_ray()
    try:
        nodes = ray_cluster.alive_nodes()
        print(
            f"sweep run on Ray ({address or 'a private instance on this host'}): "
            f"{ray_cluster.describe_nodes(nodes)}",
            flush=True,
        )
        print(f"Ray dashboard: {('http://' + dashboard) if dashboard else 'not running'}")
        return _run_stages(out, spec, grid, options)
    finally:
        ray.shutdown()


def _run_stages(out: str, spec: SweepSpec, grid: Grid, options: RunnerOptions) -> WorkerReport:
    report = WorkerReport()
    tuning: Grid | None = None
    if spec.tuning is not None:
        main, tuning = run_tuning_stage(out, spec, grid, options, report, loop=ray_loop)
        if main is None:  # some tuning run was lost: no law, no main runs yet
            report.exit_code = 1
            return report
        grid = main
    stage = ray_loop(out, spec, grid, options)
    for name in ("trained", "failed", "diverged"):
        getattr(report, name).extend(getattr(stage, name))
    report.skipped += stage.skipped
    report.exit_code = max(report.exit_code, stage.exit_code)
    if all_finished(out, grid) and (tuning is None or all_finished(out, tuning)):
        rebuild_tables(out)
    return report


def ray_loop(out: str, spec: SweepSpec, grid: Grid, options: RunnerOptions) -> WorkerReport:
    """Submit every unfinished run of `grid` and collect them as they finish."""
    from experiments.ray_submit import submit

    since = float(int(time.time()))  # like the local runner: retry flags apply to older runs
    order = execution_order(grid, 0, 1)
    waiting = [p for p in order if not is_finished(out, p, options, since)]
    wanted = {p.run_id: spec.resources.for_model(p.model) for p in waiting}
    ray_cluster.check_placeable([(p, wanted[p.run_id]) for p in waiting], ray_cluster.alive_nodes())
    watcher = ClaimStore(out, "ray-driver", timeout_s=options.claim_timeout_s)
    report, lost, inflight = WorkerReport(), [], _Inflight()
    bar = _Bar(len(order), len(order) - len(waiting), options)
    while waiting or inflight.refs:
        if waiting:
            live = watcher.live_claims()  # held by a task of another (or a dead) driver
            if any(p.run_id in live for p in waiting) and len(waiting) == len(wanted):
                print(
                    "[ray] runs still training elsewhere are held back until they end", flush=True
                )
            for point in waiting:
                if point.run_id not in live and not is_finished(out, point, options, since):
                    inflight.add(
                        submit(RunTask(out, spec, point, options, since), wanted[point.run_id])
                    )
            waiting = [p for p in waiting if p.run_id in live]
            waiting = [p for p in waiting if not is_finished(out, p, options, since)]
        for outcome in inflight.collect():
            _record(out, grid, grid.by_id()[outcome["run_id"]], outcome, report, lost)
            bar.update()
    bar.close()
    report.skipped = len(grid.points) - len(report.trained) - len(report.failed) - len(lost)
    if lost:
        print(
            f"[ray] {len(lost)} run(s) lost more workers than max_retries allows: "
            f"{', '.join(lost)}; run the same command again to resume them",
            flush=True,
        )
        report.exit_code = 1
    return report


class _Inflight:
    """The object refs the driver waits on, each mapped to its run's submission."""

    def __init__(self) -> None:
        self.refs: dict[Any, Any] = {}

    def add(self, submission: Any) -> None:
        self.refs.update({ref: submission for ref in submission.refs()})

    def collect(self) -> list[dict[str, Any]]:
        """Advance the submissions whose refs are ready; the outcomes of finished runs."""
        if not self.refs:
            time.sleep(POLL_S)
            return []
        import ray

        ready, _ = ray.wait(list(self.refs), num_returns=1, timeout=POLL_S)
        outcomes = []
        for ref in ready:
            submission = self.refs.pop(ref)
            outcome = submission.advance(ref)
            current = set(submission.refs())  # a gang moves on, or drops a killed member
            for stale in [r for r, s in self.refs.items() if s is submission and r not in current]:
                del self.refs[stale]
            self.add(submission)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes


def _record(
    out: str,
    grid: Grid,
    point: GridPoint,
    outcome: dict[str, Any],
    report: WorkerReport,
    lost: list[str],
) -> None:
    """Tables and one line per finished run, as the local runner prints them."""
    status = outcome["status"]
    if status == "lost":
        lost.append(point.run_id)
        print(f"[{WORKER}] {point.run_id} LOST: {outcome['error']}", flush=True)
        return
    if status == "skipped":  # finished by someone else while it waited for the claim
        return
    if outcome.get("resumed_from"):
        print(
            f"[{WORKER}] {point.run_id} resumed from its step-{outcome['resumed_from']} "
            f"checkpoint on node {outcome['node_id'][:8]}",
            flush=True,
        )
    if status == "failed":
        report.failed.append(point.run_id)
    else:
        report.trained.append(point.run_id)
    if status == "diverged":
        report.diverged.append(point.run_id)
    publish(out, grid, point, WORKER)


class _Bar:
    """A runs-finished bar on the driver's terminal (Ray workers have none for step bars)."""

    def __init__(self, total: int, done: int, options: RunnerOptions) -> None:
        from lab.metrics import show_progress

        enabled = show_progress() if options.progress is None else options.progress
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=done, desc="sweep (ray)", unit="run")

    def update(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
