"""What a Ray worker runs for the Ray executor: one grid point trained into its run directory.

The training itself is the local runner's (`runner.run_one`: `lab.train.train` in the run's
directory, a ConfigError recorded as failed, a divergence recorded by lab), so a run is
idempotent and a retried task resumes from the run's checkpoint. Around it, the task holds
the run's claim (experiments.claims) while it trains: `sweep status` shows it running, and
a second driver (or a task of a dead driver that is still alive) never trains it at the
same time. A claim left by an earlier attempt of the same task (Ray retries a task only
once its worker or node is gone) is taken over at once instead of waiting for it to expire.
This module never imports Ray at import time, and JAX only inside a task.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from experiments import sweep_dir
from experiments.claims import ClaimStore
from experiments.grid import GridPoint
from experiments.options import RunnerOptions
from experiments.sweep_file import SweepSpec


@dataclasses.dataclass(frozen=True)
class RunTask:
    """Everything a task needs, sent once per submission (small: configs, not arrays)."""

    out: str
    spec: SweepSpec
    point: GridPoint
    options: RunnerOptions
    since: float  # runs finished before this time may be retried (--retry-failed/-diverged)
    dead_holders: tuple[str, ...] = ()  # Ray task ids known dead: their claims are void


def worker_name(task_id: str, node_id: str) -> str:
    """The claim's worker field: the node (for `sweep status`) and the task (for takeover)."""
    return f"ray:{node_id[:8]}:{task_id}"


def holder_task(claim: dict[str, Any] | None) -> str | None:
    worker = str((claim or {}).get("worker", ""))
    return worker.rsplit(":", 1)[-1] if worker.startswith("ray:") else None


def current_ids() -> tuple[str, str]:
    import ray

    context = ray.get_runtime_context()
    return context.get_task_id(), context.get_node_id()


def train_point(task: RunTask) -> dict[str, Any]:
    """The remote function of a single-process run: claim, train (or resume), release."""
    task_id, node_id = current_ids()
    claims = claim_store(task, worker_name(task_id, node_id))
    if not acquire(claims, task, (*task.dead_holders, task_id)):
        return outcome(task, node_id, "skipped", 0)
    try:
        return outcome(task, node_id, *train_claimed(task, leader=True))
    finally:
        claims.stop()
        claims.release(task.point.run_id)


def gang_member(
    task: RunTask, coordinator: str, hosts: int, index: int, cpu_devices: int | None
) -> dict[str, Any]:
    """Process `index` of a run over `hosts` processes (one per placement-group bundle).

    Process 0 claims the run before JAX starts; every process joins `jax.distributed` with
    the coordinator on bundle 0's node, then trains (lab writes from process 0 only).
    """
    task_id, node_id = current_ids()
    claims = claim_store(task, worker_name(task_id, node_id)) if index == 0 else None
    owned = claims is not None and acquire(claims, task, (*task.dead_holders, task_id))
    try:
        if cpu_devices:
            from lab.runtime.cpu_devices import use_cpu_devices

            use_cpu_devices(cpu_devices)
        from lab.sharding import initialize_distributed

        initialize_distributed(coordinator, hosts, index)
        if is_finished(task):  # every process sees the same files once all have joined
            return outcome(task, node_id, "skipped", 0)
        return outcome(task, node_id, *train_claimed(task, leader=index == 0))
    finally:
        if claims is not None:
            claims.stop()
            if owned:
                claims.release(task.point.run_id)


def claim_store(task: RunTask, name: str) -> ClaimStore:
    return ClaimStore(
        task.out, name, timeout_s=task.options.claim_timeout_s, heartbeat_s=task.options.heartbeat_s
    )


def is_finished(task: RunTask) -> bool:
    from experiments.runner import is_finished

    return is_finished(task.out, task.point, task.options, task.since)


def acquire(claims: ClaimStore, task: RunTask, dead: Iterable[str]) -> bool:
    """Hold the run's claim (waiting while someone live trains it); False once it is finished."""
    return wait_for_claim(claims, task.point.run_id, set(dead), lambda: is_finished(task))


def wait_for_claim(
    claims: ClaimStore, run_id: str, dead: set[str], finished: Callable[[], bool]
) -> bool:
    while not finished():
        if holder_task(claims.read(run_id)) in dead:
            claims.path(run_id).unlink(missing_ok=True)  # an earlier attempt's: void
        if claims.try_claim(run_id):
            if finished():  # finished between the check and the claim
                claims.release(run_id)
                return False
            claims.start_heartbeat()
            return True
        time.sleep(min(claims.heartbeat_s, 2.0))
    return False


def train_claimed(task: RunTask, leader: bool) -> tuple[str, int]:
    """Train with the local runner's own code; (status, step resumed from)."""
    from experiments.runner import WorkerReport, run_one

    resumed = checkpoint_step(task)
    report = WorkerReport()
    options = dataclasses.replace(task.options, progress=False)  # no terminal in a worker
    run_one(task.out, task.spec, task.point, options, report, task.since, leader)
    if report.failed:
        return "failed", resumed
    return ("diverged" if report.diverged else "trained"), resumed


def checkpoint_step(task: RunTask) -> int:
    """The latest finished checkpoint in the run directory (0: none, a fresh start)."""
    path = sweep_dir.run_path(task.out, task.point.run_id) / "checkpoints"
    try:
        steps = [int(p.name) for p in path.iterdir() if p.name.isdigit()]
    except (FileNotFoundError, NotADirectoryError):
        return 0
    return max(steps, default=0)


def outcome(task: RunTask, node_id: str, status: str, resumed_from: int) -> dict[str, Any]:
    return {
        "run_id": task.point.run_id,
        "status": status,
        "node_id": node_id,
        "pid": os.getpid(),
        "resumed_from": resumed_from,
    }
