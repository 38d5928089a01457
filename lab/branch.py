"""A run that starts from another run's checkpoint: a WSD cooldown branch off a constant-LR trunk.

`seed_from_parent(config, out, parent, step)` writes the first checkpoint of the run in `out`:
the parent's state at `step` (parameters, Adam moments, update count, data-stream position)
with the optimizer state's schedule numbers replaced by `config`'s own (lab.optim keeps the
schedule as data). `lab.train.train(config, out)` then simply resumes it, so a branch is an
ordinary run that happens to begin at `step`: its chunks, evals, checkpoints and kill -9
recovery are the resumed run's. Bitwise, the result is the standalone run of `config`
whenever the parent trained the same steps 0..step-1 with the same lrs, which the seeding
checks (same model, data, seed, batch, optimizer update and lr at every earlier step).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from lab import run_dir, step_cache
from lab.checkpoint import RunCheckpoints, checkpoint_steps
from lab.errors import ConfigError
from lab.optim import (
    ScheduleState,
    make_optimizer,
    make_schedule,
    schedule_arrays,
    update_signature,
)
from lab.run_config import RunConfig
from lab.sharding import make_mesh

# RunConfig fields a branch may change from its parent: the length, and how it is logged.
FREE_FIELDS = frozenset(
    {
        "num_tokens",
        "optimizer",  # checked apart: the update must match, the schedule may not
        "eval_fractions",
        "checkpoint_every_steps",
        "checkpoint_every_seconds",
        "keep_checkpoints",
        "keep_final_checkpoint",
    }
)


def is_seeded(out: str | Path) -> bool:
    """True once `out` holds a checkpoint or a result: seeding again would undo progress."""
    out = Path(out)
    return bool(checkpoint_steps(run_dir.checkpoint_dir(out))) or run_dir.result_path(out).exists()


def check_branch(parent: RunConfig, config: RunConfig, step: int) -> None:
    """A branch at `step` must be a run the parent's first `step` steps also began."""
    if not 0 < step < config.num_steps:
        raise ConfigError(
            f"a branch must start inside its own run: step {step} not in (0, {config.num_steps})"
        )
    if step > parent.num_steps:
        raise ConfigError(f"the parent run has {parent.num_steps} steps, fewer than {step}")
    for field in dataclasses.fields(RunConfig):
        if field.name in FREE_FIELDS:
            continue
        if getattr(parent, field.name) != getattr(config, field.name):
            raise ConfigError(
                f"branch and parent differ in {field.name} ({getattr(config, field.name)!r} vs "
                f"{getattr(parent, field.name)!r}); a branch may only change its length and schedule"
            )
    ours, theirs = config.effective_optimizer(), parent.effective_optimizer()
    if update_signature(ours) != update_signature(theirs):
        raise ConfigError("branch and parent optimizers differ beyond the schedule; use the same")
    steps = np.arange(step)
    mine = np.asarray(make_schedule(ours, config.num_steps)(steps))
    before = np.asarray(make_schedule(theirs, parent.num_steps)(steps))
    if not np.array_equal(mine, before):
        first = int(np.argmax(mine != before))
        raise ConfigError(
            f"the branch's lr differs from its parent's at step {first} "
            f"({mine[first]:.6g} vs {before[first]:.6g}): give both the same warmup (in steps) "
            "and peak, and start the branch no later than its own cooldown"
        )


def seed_from_parent(config: RunConfig, out: str | Path, parent: str | Path, step: int) -> bool:
    """Write `out`'s first checkpoint from `parent`'s at `step` (see the module docstring).

    Idempotent: returns False without touching `out` once it has a checkpoint or a result
    (a resumed branch keeps its progress). A seeding killed mid-save leaves orbax's
    uncommitted folder, which is ignored, and the next call seeds again.
    """
    out, parent = Path(out), Path(parent)
    if is_seeded(out):
        return False
    parent_config = run_dir.read_config(parent)
    check_branch(parent_config, config, step)
    if step not in checkpoint_steps(run_dir.checkpoint_dir(parent)):
        raise ConfigError(
            f"{parent} has no checkpoint at step {step} to branch from (it has "
            f"{checkpoint_steps(run_dir.checkpoint_dir(parent))}); train the parent to {step} first"
        )
    run_dir.claim_run_dir(out, config)
    state_like = _fresh_state(config)
    state, host = _restore_read_only(run_dir.checkpoint_dir(parent), step, state_like)
    if host.get("step") != step:
        raise ConfigError(f"{parent}'s checkpoint {step} records step {host.get('step')!r}")
    numbers = schedule_arrays(config.effective_optimizer(), config.num_steps)
    state = state.replace(opt_state=_with_schedule_placed(state.opt_state, numbers))
    host = {
        **host,
        "stream": {**host["stream"], "num_tokens": config.num_tokens},
        "train_seconds": 0.0,  # the branch's own step time; the trunk's is the trunk's
    }
    checkpoints = RunCheckpoints(run_dir.checkpoint_dir(out), max_to_keep=config.keep_checkpoints)
    try:
        checkpoints.save(step, state, host)
    finally:
        checkpoints.close()
    return True


def _fresh_state(config: RunConfig) -> Any:
    """An initialised state of `config` (its shapes and shardings; the same jitted functions
    `lab.train` then takes from `step_cache`, so nothing compiles twice)."""
    optimizer_config = config.effective_optimizer()
    optimizer, _ = make_optimizer(optimizer_config, config.num_steps, config.model)
    mesh = make_mesh(config.mesh)
    functions = step_cache.run_functions(
        config.model, optimizer_config, optimizer, mesh, config.steps_per_call
    )
    schedule = schedule_arrays(optimizer_config, config.num_steps)
    return functions.init_state(jax.random.key(config.seed), schedule)


def _restore_read_only(directory: Path, step: int, state_like: Any) -> tuple[Any, dict]:
    """The state and host record at `step`, without saving: other branches of the same trunk
    may read it at the same time, and nothing here deletes or rewrites it."""
    manager = ocp.CheckpointManager(
        directory.absolute(),
        item_handlers={
            "state": ocp.StandardCheckpointHandler(),
            "host": ocp.JsonCheckpointHandler(),
        },
        options=ocp.CheckpointManagerOptions(create=False),
    )
    try:
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state_like)
        restored = manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), host=ocp.args.JsonRestore()
            ),
        )
    finally:
        manager.close()
    return restored["state"], dict(restored["host"])


def _with_schedule_placed(opt_state: Any, numbers: dict[str, np.float32]) -> Any:
    """`opt_state` with every ScheduleState's numbers replaced (count kept), each new scalar
    placed where the old one lived so the state keeps its shardings."""

    def replace(leaf: Any) -> Any:
        if not isinstance(leaf, ScheduleState):
            return leaf
        fields = {
            name: jax.device_put(np.float32(value), getattr(leaf, name).sharding)
            for name, value in numbers.items()
        }
        return leaf._replace(**fields)

    return jax.tree.map(replace, opt_state, is_leaf=lambda x: isinstance(x, ScheduleState))
