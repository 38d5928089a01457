"""One jitted step for a group of runs of one shape: `jax.vmap` of the run's own step.

    step = make_group_step(model, optimizer, mesh, shardings, steps_per_call=k)
    states, metrics = step(states, batches, num_steps)
    # states: a TrainState whose every leaf has a leading run axis R
    # batches: int32 [R, k, B, ctx+1]; num_steps: int32, 1..k, the same for every run
    # metrics: {"loss", "grad_norm", "lr"}: f32 [R, k], 0 past num_steps

The step vmapped is exactly `lab.train_step.train_step_body`'s on-device loop, so a member
computes what its standalone run computes, batched: the schedule is optimizer-state data
(`lab.optim.ScheduleState`), so each member's peak LR, warmup and length ride along in its
slice of the state. The members train in lockstep (one trip count; a member that ends is
split off by `lab.group_train` with `make_take`, so no compute goes to finished runs). No
operation mixes two runs, so a member's numbers do not depend on the others' values (they
may differ from the standalone run's in the last float bits: the batched matmuls reduce in
another order).

`group_key` says which runs may share a step: everything compiled into it must be equal.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lab import sharding
from lab.config import ModelConfig
from lab.optim import update_signature
from lab.run_config import RunConfig
from lab.runtime.compiler_options import step_compiler_options
from lab.train_step import train_step_body

# Settings a member may choose freely: they are data (schedule, stream, init) or host-side.
FREE_FIELDS = (
    "num_tokens",
    "seed",
    "optimizer.peak_lr",
    "optimizer.warmup_steps",
    "optimizer.final_lr_fraction",
    "eval_fractions",
    "checkpoint_every_steps",
    "checkpoint_every_seconds",
    "keep_checkpoints",
    "keep_final_checkpoint",
    "divergence_factor",
)


def group_key(config: RunConfig) -> tuple:
    """What must be equal for runs to train in one vmapped step (the FREE_FIELDS may differ).

    The model, the batch, the optimizer's compiled settings, the mesh, the corpus and the
    eval set, and the chunk length; the schedule's numbers, the seed and the length are data.
    """
    return (
        config.model,
        config.train_batch_size,
        update_signature(config.effective_optimizer()),
        config.mesh,
        config.data,
        config.steps_per_call,
        config.eval_batches,
        config.eval_batch_size,
        config.peak_flops,
    )


def group_steps_per_call(steps_per_call: int) -> int:
    """The group always runs the on-device loop (its trip count is the per-run mask), so a
    config's 1 becomes a 2-slot loop that the host fills one step at a time."""
    return max(steps_per_call, 2)


def stacked(tree: Any) -> Any:
    """Shardings of the same leaves with a leading, unsplit run axis."""

    def one(leaf: NamedSharding) -> NamedSharding:
        return NamedSharding(leaf.mesh, PartitionSpec(None, *leaf.spec))

    return jax.tree.map(one, tree, is_leaf=lambda x: isinstance(x, NamedSharding))


def make_group_step(
    model: ModelConfig,
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    state_shardings: Any,
    steps_per_call: int,
):
    """Jitted (states [R, ...], batches [R, k, B, T+1], num_steps) -> (states, metrics)."""
    k = group_steps_per_call(steps_per_call)
    body, (batch_sharding, count_sharding) = train_step_body(
        model, optimizer, mesh, state_shardings, k
    )
    states = stacked(state_shardings)
    return jax.jit(
        sharding.with_activation_rules(jax.vmap(body, in_axes=(0, 0, None)), mesh),
        in_shardings=(states, stacked(batch_sharding), count_sharding),
        out_shardings=(states, sharding.replicated(mesh)),
        donate_argnums=0,
        compiler_options=step_compiler_options(mesh.devices.flat[0].platform),
    )


def make_stack(state_shardings: Any):
    """Jitted (*member states) -> one state with a leading run axis, laid out for the step."""

    def stack(*states: Any) -> Any:
        return jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)

    return jax.jit(stack, out_shardings=stacked(state_shardings))


def make_member(state_shardings: Any):
    """Jitted (states, index) -> member `index`'s state, shaped and laid out as its
    standalone run's (its own checkpoints and eval then are the standalone run's files and
    executable). One executable serves every index."""

    def member(states: Any, index: jax.Array) -> Any:
        return jax.tree.map(lambda leaf: leaf[index], states)

    return jax.jit(member, out_shardings=state_shardings)


def make_take(state_shardings: Any):
    """Jitted (states, slots int32 [R']) -> the stacked state of those members only."""

    def take(states: Any, slots: jax.Array) -> Any:
        return jax.tree.map(lambda leaf: leaf[slots], states)

    return jax.jit(take, out_shardings=stacked(state_shardings))
