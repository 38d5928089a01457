"""Several runs of one shape trained together: one vmapped step, each member its own run.

    results = train_group([config_a, config_b, config_c], [dir_a, dir_b, dir_c])

Members share everything compiled (`lab.group_step.group_key`) and may differ in what is
data: peak LR, warmup, final LR, length, seed, eval points, checkpointing. Each member keeps
what `lab.train.train` gives a run: its own directory (config.json, metrics.jsonl,
evals.jsonl, checkpoints/, result.json), its own data stream and eval set, its own schedule
in its slice of the optimizer state, and its own end: a member that reaches its last step
(or diverges) is finished there, its result.json written, and the others go on. Its
checkpoints are its standalone run's (same state layout): a member could resume alone.

All members train in lockstep, so they stand at one step; they checkpoint together (at the
union of their checkpoint steps, by the shortest time interval, and at preemption). A member
that ends is split off: the others go on in a step of one run fewer (no compute spent on
finished runs). A group killed mid-save may leave a newer checkpoint in some members than in
others: the next call rewinds every member to the newest step they all hold (deleting the
newer ones) and replays from there. Which members train together at a step is a function of
the configs alone (the unfinished ones), and a member's numbers depend only on its own data
and the group's size, so the resumed group ends bitwise where an uninterrupted one ends.
Chunks end at the union of the members' eval, checkpoint and last steps.

result.json is the standalone run's record (the same tokens, LRs, eval points; losses within
float-reduction tolerance) plus `provenance.group`; its timing and throughput are the
group's wall time, shared by all members.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from lab import run_dir
from lab.checkpoint import checkpoint_steps as saved_steps
from lab.errors import ConfigError
from lab.group_step import (
    group_key,
    group_steps_per_call,
    make_group_step,
    make_member,
    make_stack,
    make_take,
    stacked,
)
from lab.metrics import Progress, show_progress
from lab.optim import make_optimizer
from lab.preemption import SaveAgreement
from lab.run_config import RunConfig
from lab.runtime.atomic_io import is_remote
from lab.runtime.disk import disk_errors
from lab.sharding import batch_sharding
from lab.step_meter import StepMeter
from lab.train import (
    LoopOutcome,
    Run,
    RunInterrupted,
    checkpoint_steps,
    chunk_size,
    evaluate,
    finish_run,
    host_state,
    padded,
    setup_run,
    sync_logs,
)
from lab.train_step import state_shardings


@dataclasses.dataclass
class Member:
    """One run of the group, as the loop sees it."""

    index: int
    run: Run
    meter: StepMeter
    boundaries: set[int]  # its eval, checkpoint and last steps: chunk ends
    evals: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    eval_times: list[float] = dataclasses.field(default_factory=list)
    checkpoint_seconds: float = 0.0


def check_group(configs: Sequence[RunConfig], out_dirs: Sequence[str | Path]) -> None:
    """Raise ConfigError unless these runs can train as one group."""
    if not configs or len(configs) != len(out_dirs):
        raise ConfigError(
            f"a group needs one run directory per config, got {len(configs)} configs and "
            f"{len(out_dirs)} directories"
        )
    if len({str(d) if is_remote(d) else str(Path(d).absolute()) for d in out_dirs}) < len(out_dirs):
        raise ConfigError("two members of a group share a run directory; give each its own")
    first = group_key(configs[0])
    for index, config in enumerate(configs[1:], start=1):
        if group_key(config) != first:
            raise ConfigError(
                f"run {index} of the group differs from run 0 in a setting compiled into the "
                "step (model, batch, optimizer other than the schedule, mesh, data, "
                "steps_per_call, eval set); group only runs that differ in LR schedule, "
                "length, seed, evals or checkpointing"
            )
    if jax.process_count() > 1:
        raise ConfigError("groups train in one process; run a multi-host run on its own")


def train_group(
    configs: Sequence[RunConfig],
    out_dirs: Sequence[str | Path],
    *,
    progress: bool | None = None,
    compilation_cache: str | None = "default",
    devices: list[Any] | None = None,
    record: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Train (or resume, or just return) every member; their result records, in order.

    `record`: what the caller adds to each member's `provenance.group` (the sweep runner:
    run ids and the grouping threshold), so `sweep verify` can re-run the group.
    """
    started = time.perf_counter()
    check_group(configs, out_dirs)
    outs = [run_dir.run_path(d) for d in out_dirs]
    results: list[dict[str, Any] | None] = [
        run_dir.claim_run_dir(out, config) for config, out in zip(configs, outs, strict=True)
    ]
    pending = [i for i, result in enumerate(results) if result is None]
    if not pending:
        return results  # type: ignore[return-value]
    _rewind([outs[i] for i in pending])
    runs = {
        i: setup_run(configs[i], outs[i], compilation_cache=compilation_cache, devices=devices)
        for i in pending
    }
    steps = {run.step for run in runs.values()}
    if len(steps) != 1:
        raise ConfigError(
            f"group members restored at different steps {sorted(steps)}; delete their "
            "checkpoints/ to train the group from the start"
        )
    setup_seconds = time.perf_counter() - started
    show = show_progress() if progress is None else progress
    members = [_member(i, runs[i]) for i in pending]
    group = _GroupState(configs, members, record or {})
    with disk_errors(outs[pending[0]]):
        try:
            for index, result in _group_loop(group, steps.pop(), show):
                elapsed = time.perf_counter() - started
                results[index] = _finished(group, index, result, setup_seconds, elapsed)
        except BaseException:
            for m in group.active:
                m.run.checkpoints.close_after_error()
                m.run.metrics.close()
                m.run.evals.close()
            raise
    return results  # type: ignore[return-value]


def _member(index: int, run: Run) -> Member:
    config = run.config
    meter = StepMeter(run.metrics, config, run.flops_per_step, run.peak[0])
    ends = set(config.eval_steps()) | checkpoint_steps(config) | {config.num_steps}
    return Member(index=index, run=run, meter=meter, boundaries=ends)


class _GroupState:
    """The stacked state of the members still training (slot = position in `active`) and
    the group's jitted functions, built from the first member's run."""

    def __init__(
        self, configs: Sequence[RunConfig], members: list[Member], record: dict[str, Any]
    ) -> None:
        first = members[0].run
        config = first.config
        optimizer_config = config.effective_optimizer()
        optimizer, _ = make_optimizer(optimizer_config, config.num_steps, config.model)
        shardings = state_shardings(config.model, optimizer, first.mesh)
        self.size = len(configs)
        self.record = record
        self.runs = {m.index: m.run for m in members}
        self.config_hashes = [c.config_hash() for c in configs]
        self.steps_per_call = config.steps_per_call
        self.slots = group_steps_per_call(config.steps_per_call)
        self.step_fn = make_group_step(
            config.model, optimizer, first.mesh, shardings, config.steps_per_call
        )
        self.member_fn = make_member(shardings)
        self.take_fn = make_take(shardings)
        self.batch_sharding = stacked(batch_sharding(first.mesh, 3))
        self.batch_shape = (self.slots, config.train_batch_size, config.model.ctx + 1)
        self.state = make_stack(shardings)(*(m.run.state for m in members))
        for m in members:
            m.run.state = None  # the stacked copy is the one state now
        self.active = list(members)

    def slot(self, m: Member) -> int:
        return self.active.index(m)

    def member_state(self, m: Member) -> Any:
        return self.member_fn(self.state, np.int32(self.slot(m)))

    def split_off(self, m: Member) -> None:
        """Drop an ended member from the stack: the others go on in a smaller step."""
        keep = np.array([i for i, other in enumerate(self.active) if other is not m], np.int32)
        self.active.remove(m)
        if self.active:
            self.state = self.take_fn(self.state, keep)


def _group_loop(group: _GroupState, step: int, show: bool):
    """Train until every member is finished; yield (index, LoopOutcome) as each one ends."""
    for m in list(group.active):  # resumed at its last step: only result.json was missing
        if step >= m.run.config.num_steps:
            group.split_off(m)
            yield m.index, LoopOutcome(step, None, [], m.meter, [], 0.0)
    total = max((m.run.config.num_steps for m in group.active), default=step)
    bar = Progress(total, step, f"group of {group.size}", show and bool(group.active))
    every = min((m.run.config.checkpoint_every_seconds for m in group.active), default=0.0)
    with SaveAgreement(every) as agreement:
        while group.active:
            ends = sorted(set().union(*(m.boundaries for m in group.active)))
            k = chunk_size(step, ends, group.steps_per_call)
            size = len(group.active)
            batches = np.zeros((size, *group.batch_shape), np.int32)
            for slot, m in enumerate(group.active):
                batches[slot] = padded(m.run.stream.next_batches(k), group.slots)
            group.state, metrics = group.step_fn(
                group.state,
                jax.device_put(batches, group.batch_sharding),
                np.int32(k),
            )
            diverged = {m.index: m.meter.flush() for m in group.active}  # the previous chunk
            for slot, m in enumerate(group.active):
                m.meter.dispatched(step, k, {name: value[slot] for name, value in metrics.items()})
            step += k
            decided = agreement.decide()  # the same on every process: orbax saves collectively
            save_due = (
                decided.preempted
                or decided.time_due
                or any(step in checkpoint_steps(m.run.config) for m in group.active)
                or any(
                    step == m.run.config.num_steps and m.run.config.keep_final_checkpoint
                    for m in group.active
                )
            )
            for m in list(group.active):
                pause = save_due or step in m.run.config.eval_steps()
                if diverged[m.index] is None and pause:
                    diverged[m.index] = m.meter.flush()
                if diverged[m.index] is not None:
                    group.split_off(m)
                    yield m.index, _outcome(m, step, diverged[m.index])
            if not group.active:
                break
            bar.update(k, group.active[0].meter.last_loss)
            for m in group.active:
                if step in m.run.config.eval_steps():
                    tic = time.perf_counter()
                    run = m.run
                    params = group.member_state(m).params
                    point = evaluate(
                        run.functions.eval_stack, params, run.eval_set, step, run.config
                    )
                    m.evals.append(point)
                    run.evals.write(point)
                    m.eval_times.append(time.perf_counter() - tic)
            if save_due:
                for m in group.active:
                    tic = time.perf_counter()
                    sync_logs(m.run)  # on gs://, the logs reach the bucket before the checkpoint
                    host = host_state(m.run.stream, step, m.run.earlier_train_seconds, m.meter)
                    m.run.checkpoints.save(step, group.member_state(m), host)
                    m.checkpoint_seconds += time.perf_counter() - tic
                agreement.saved()
            for m in list(group.active):
                if save_due or step in m.run.config.eval_steps():
                    m.meter.paused()
                if step == m.run.config.num_steps:
                    group.split_off(m)
                    yield m.index, _outcome(m, step, None)
            if decided.preempted and group.active:
                for m in group.active:
                    m.run.checkpoints.close()
                raise RunInterrupted(
                    f"preempted at step {step}; every member of the group checkpointed. "
                    "Run the same command again to resume."
                )
    bar.close()


def _outcome(m: Member, step: int, divergence: dict[str, Any] | None) -> LoopOutcome:
    return LoopOutcome(step, divergence, m.evals, m.meter, m.eval_times, m.checkpoint_seconds)


def _finished(
    group: _GroupState, index: int, outcome: LoopOutcome, setup_s: float, elapsed: float
) -> dict[str, Any]:
    """finish_run's result.json, plus the group it was trained in (provenance)."""
    run = group.runs[index]
    result = finish_run(run, outcome, setup_s, elapsed)
    result["provenance"]["group"] = {
        "mode": "vmap",
        "index": index,
        "size": group.size,
        "members": group.config_hashes,
        "steps_per_call": group.slots,
        **group.record,
    }
    if run.is_writer:
        run_dir.write_result(run.out, result)
    return result


def _rewind(outs: Sequence[Path]) -> None:
    """Delete every member's checkpoints newer than the newest step all of them hold, so
    all resume at one step (a kill mid-save can commit some members' save and not others')."""
    held = [set(saved_steps(run_dir.checkpoint_dir(out))) for out in outs]
    common = max(set.intersection(*held), default=0)
    for out, steps in zip(outs, held, strict=True):
        for step in sorted(s for s in steps if s > common):
            shutil.rmtree(run_dir.checkpoint_dir(out) / str(step))
