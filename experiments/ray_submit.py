"""Runs in flight on Ray: a single-process run is one task; a multi-host run is a gang.

A single-process task asks for its `[resources]` and is retried by Ray itself after a lost
worker or node (`max_retries`); on CPUs its worker process is kept for the next run (jitted
functions stay cached, as in a local sweep's long-lived jobs); a run that asks for GPUs or
custom resources (TPU) gets a fresh process that exits after it, so no idle worker keeps
an accelerator open. A gang is a STRICT_SPREAD placement group with one bundle
per host: a probe on bundle 0 picks the `jax.distributed` coordinator address, then one
task per bundle trains, each in a fresh worker process (JAX joins a cluster once per
process). If any member fails, the driver kills the others, frees the group and places the
gang again, up to `max_retries` times; the run resumes from its checkpoint. A ConfigError
or a divergence is recorded by the task and never retried; a task that raises anything
else stops the sweep with that task's traceback.
"""

from __future__ import annotations

import dataclasses
import functools
import socket
from collections.abc import Callable
from typing import Any

from experiments import ray_tasks
from experiments.jobs import child_env
from experiments.ray_tasks import RunTask
from experiments.resources import RunResources


class RunPreempted(RuntimeError):
    """A task's run was stopped by SIGTERM after checkpointing: Ray retries it."""


def retryable(run: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """`run(*args)` with lab's preemption (checkpointed, then raised) as the retried error."""
    from lab.train import RunInterrupted

    try:
        return run(*args)
    except RunInterrupted as interrupted:
        raise RunPreempted(str(interrupted)) from None


def train_task(task: RunTask) -> dict[str, Any]:
    return retryable(ray_tasks.train_point, task)


def member_task(task: RunTask, *args: Any) -> dict[str, Any]:
    return retryable(ray_tasks.gang_member, task, *args)


def coordinator_address() -> str:
    """HOST:PORT of a free port on this node (bundle 0's): where process 0 serves jax."""
    import ray

    host = ray.util.get_node_ip_address()
    with socket.socket() as probe:
        probe.bind((host, 0))
        return f"{host}:{probe.getsockname()[1]}"


@functools.cache
def remote(name: str, fresh: bool = False) -> Any:
    """The remote function; `fresh`: its worker process exits after one task (a GPU or TPU
    stays bound to the process that opened it; JAX joins a distributed cluster once)."""
    import ray

    functions = {
        "train": train_task,
        "member": member_task,
        "coordinator": coordinator_address,
    }
    return ray.remote(max_calls=1)(functions[name]) if fresh else ray.remote(functions[name])


def uses_accelerator(resources: RunResources) -> bool:
    return resources.num_gpus > 0 or bool(resources.custom)


def task_env(resources: RunResources) -> dict[str, str]:
    """Single-threaded XLA for a one-CPU run, as the local executor's `--jobs` children have
    (so both executors train bitwise alike, and runs side by side do not oversubscribe)."""
    if resources.num_cpus <= 1 and not resources.cpu_devices:
        return {"XLA_FLAGS": child_env()["XLA_FLAGS"]}
    return {}


def request(resources: RunResources) -> dict[str, Any]:
    return {
        "num_cpus": resources.num_cpus,
        "num_gpus": resources.num_gpus,
        "resources": dict(resources.custom),
    }


def lost(task: RunTask, error: BaseException) -> dict[str, Any]:
    text = str(error).strip().splitlines()
    return {
        "run_id": task.point.run_id,
        "status": "lost",
        "error": text[0] if text else repr(error),
    }


def result_of(ref: Any, task: RunTask) -> dict[str, Any]:
    """A task's outcome; 'lost' once Ray gave up on it (node or worker gone, preempted)."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, RunPreempted):
            return lost(task, error.cause)
        raise
    except ray.exceptions.RayError as error:
        return lost(task, error)


class SingleRun:
    """One task; Ray retries it after a lost node or worker."""

    def __init__(self, task: RunTask, resources: RunResources) -> None:
        self.task = task
        env = task_env(resources)
        self.ref = (
            remote("train", fresh=uses_accelerator(resources))
            .options(
                **request(resources),
                max_retries=resources.max_retries,
                retry_exceptions=[RunPreempted],
                name=f"train {task.point.run_id}",
                runtime_env={"env_vars": env} if env else None,
            )
            .remote(task)
        )

    def refs(self) -> list[Any]:
        return [] if self.ref is None else [self.ref]

    def advance(self, ref: Any) -> dict[str, Any] | None:
        self.ref = None
        return result_of(ref, self.task)


@dataclasses.dataclass
class GangRun:
    """One run over `resources.hosts` processes in a STRICT_SPREAD placement group."""

    task: RunTask
    resources: RunResources
    attempt: int = 0
    dead: tuple[str, ...] = ()
    pending: list[Any] = dataclasses.field(default_factory=list)
    members: list[Any] = dataclasses.field(default_factory=list)
    stage: str = "placing"
    first: dict[str, Any] | None = None  # process 0's outcome

    def __post_init__(self) -> None:
        self.place()

    def place(self) -> None:
        from ray.util.placement_group import placement_group

        bundles = [self.resources.bundle() or {"CPU": 0.001}] * self.resources.hosts
        self.group = placement_group(
            bundles, strategy="STRICT_SPREAD", name=f"scaling-lab {self.task.point.run_id}"
        )
        self.stage, self.pending, self.members = "placing", [self.group.ready()], []

    def refs(self) -> list[Any]:
        return list(self.pending)

    def strategy(self, index: int) -> Any:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        return PlacementGroupSchedulingStrategy(self.group, placement_group_bundle_index=index)

    def advance(self, ref: Any) -> dict[str, Any] | None:
        import ray

        self.pending.remove(ref)
        if self.stage == "placing":
            ray.get(ref)
            probe = remote("coordinator").options(num_cpus=0, scheduling_strategy=self.strategy(0))
            self.stage, self.pending = "probing", [probe.remote()]
            return None
        if self.stage == "probing":
            self.launch(ray.get(ref))
            return None
        try:
            outcome = ray.get(ref)
        except ray.exceptions.RayError as error:  # when one member dies, the others' collectives
            return self.retry(error)  # fail too: any error of a member retries the gang
        if ref == self.members[0]:
            self.first = outcome
        if self.pending:
            return None
        self.stop()
        return self.first

    def launch(self, coordinator: str) -> None:
        """One task per bundle, each in a fresh process (a runtime env of its own)."""
        gang = f"{self.task.point.run_id}.{self.attempt}"
        env = {**task_env(self.resources), "SCALING_LAB_RAY_GANG": gang}
        task = dataclasses.replace(self.task, dead_holders=self.task.dead_holders + self.dead)
        hosts = self.resources.hosts
        self.members = [
            remote("member", fresh=True)
            .options(
                **request(self.resources),
                scheduling_strategy=self.strategy(i),
                max_retries=0,
                name=f"train {self.task.point.run_id} [{i}/{hosts}]",
                runtime_env={"env_vars": env},
            )
            .remote(task, coordinator, hosts, i, self.resources.cpu_devices)
            for i in range(hosts)
        ]
        self.stage, self.pending = "training", list(self.members)

    def retry(self, error: BaseException) -> dict[str, Any] | None:
        """A member died: kill the gang, free its group, place it again (or give up)."""
        self.dead += (self.members[0].task_id().hex(),)
        self.stop()
        self.attempt += 1
        if self.attempt > self.resources.max_retries:
            return lost(self.task, error)
        print(
            f"[ray] {self.task.point.run_id}: a process of its gang failed "
            f"({lost(self.task, error)['error']}); placing the gang again "
            f"(attempt {self.attempt + 1}), to resume from its checkpoint",
            flush=True,
        )
        self.place()
        return None

    def stop(self) -> None:
        import ray
        from ray.util import remove_placement_group

        for ref in self.pending:
            ray.cancel(ref, force=True)
        self.pending = []
        remove_placement_group(self.group)


def submit(task: RunTask, resources: RunResources) -> SingleRun | GangRun:
    return GangRun(task, resources) if resources.hosts > 1 else SingleRun(task, resources)
