"""Sharded initialisation, train step and eval step: pure jitted functions over a TrainState.

    state, shardings = init_train_state(model, optimizer, mesh, rng)       # born sharded
    train_step = make_train_step(model, optimizer, mesh, shardings, steps_per_call=k)
    state, metrics = train_step(state, batch)         # k = 1: batch int32 [B, ctx+1]
    state, metrics = train_step(state, batches, n)    # k > 1: [k, B, ctx+1], first n <= k

Shardings come from `lab.sharding` (parameters by their logical names and the rules; optimizer
leaves mirroring the parameter they belong to); each jitted function is traced inside
`lab.sharding.activation_rules(mesh)`, so the model's activation constraints resolve on the
mesh. The state is donated, so a step updates it in place. With `model.microbatches = k` a
step accumulates the gradients of k slices of its batch (`loss_and_grads`).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from lab import sharding
from lab.config import ModelConfig
from lab.errors import ConfigError
from lab.model import Transformer
from lab.optim import current_lr, with_schedule
from lab.runtime.compiler_options import step_compiler_options

METRIC_NAMES = ("loss", "grad_norm", "lr")


class TrainState(flax.struct.PyTreeNode):
    """Everything a step changes: a plain pytree (checkpointable, donatable)."""

    step: jax.Array
    params: Any
    opt_state: Any


def loss_fn(params: Any, model: ModelConfig, batch: jax.Array) -> jax.Array:
    """Mean next-token cross-entropy (fp32) of int32 batch [B, T+1] (sharded inside
    `lab.sharding.activation_rules`, the unsharded reference outside it)."""
    sum_loss, num_tokens = _sum_loss(params, model, batch)
    return sum_loss / num_tokens


def _sum_loss(params, model, batch_BxT1) -> tuple[jax.Array, jax.Array]:
    inputs_BxT, targets_BxT = batch_BxT1[:, :-1], batch_BxT1[:, 1:]
    logits_BxTxV = Transformer(model).apply({"params": params}, inputs_BxT)
    log_z_BxT = jax.nn.logsumexp(logits_BxTxV, axis=-1)
    target_logit_BxT = jnp.take_along_axis(logits_BxTxV, targets_BxT[..., None], axis=-1)[..., 0]
    return jnp.sum(log_z_BxT - target_logit_BxT), jnp.asarray(targets_BxT.size, jnp.int32)


def loss_and_grads(
    params: Any, model: ModelConfig, batch_BxT1: jax.Array, grad_shardings: Any = None
) -> tuple[jax.Array, Any]:
    """(mean loss, its gradients) of batch [B, T+1], over `model.microbatches` = k slices.

    k > 1: slice j is rows j, j+k, j+2k, ... (a reshape that keeps each device's rows on the
    device: no communication), its gradient computed and summed in a lax.scan, so only one
    slice's activations are alive at a time. All slices have B/k rows of T tokens, so the
    mean of their mean losses is the batch's mean loss, and likewise for the gradients.
    `grad_shardings` (the params') pins the accumulator's layout.
    """
    grad_fn = jax.value_and_grad(loss_fn)
    k = model.microbatches
    if k == 1:
        return grad_fn(params, model, batch_BxT1)
    b, t1 = batch_BxT1.shape
    if b % k:
        raise ConfigError(
            f"batch size {b} does not split into microbatches = {k}; use a batch size that "
            f"is a multiple of {k} (times data x fsdp)"
        )
    micro_KxMxT1 = batch_BxT1.reshape(b // k, k, t1).swapaxes(0, 1)
    micro_KxMxT1 = nn.with_logical_constraint(micro_KxMxT1, sharding.TOKEN_STACK)

    def add(carry: tuple, micro_MxT1: jax.Array) -> tuple:
        loss, grads = grad_fn(params, model, micro_MxT1)
        return (carry[0] + loss, jax.tree.map(jnp.add, carry[1], grads)), None

    zeros = jax.tree.map(jnp.zeros_like, params)
    if grad_shardings is not None:
        zeros = jax.lax.with_sharding_constraint(zeros, grad_shardings)
    (loss_sum, grad_sum), _ = jax.lax.scan(add, (jnp.zeros((), jnp.float32), zeros), micro_KxMxT1)
    return loss_sum / k, jax.tree.map(lambda g: g / k, grad_sum)


def state_shardings(model: ModelConfig, optimizer: optax.GradientTransformation, mesh: Mesh) -> Any:
    """A TrainState of NamedShardings: parameters by the rules, optimizer leaves mirroring them
    (a leaf that mirrors no parameter raises; see `lab.sharding.mirror_shardings`)."""
    return TrainState(
        step=sharding.replicated(mesh),
        params=sharding.param_shardings(model, mesh),
        opt_state=sharding.optimizer_state_shardings(optimizer, model, mesh),
    )


def _init_params_fn(model: ModelConfig):
    def init_params(rng: jax.Array) -> Any:
        tokens = jnp.zeros((1, model.ctx), jnp.int32)
        return nn.meta.unbox(Transformer(model).init(rng, tokens)["params"])

    return init_params


def make_init_state(model: ModelConfig, optimizer: optax.GradientTransformation, shardings: Any):
    """Jitted (rng, schedule) -> TrainState at step 0, born sharded, in one call.

    `schedule`: the run's `lab.optim.schedule_numbers` as float32 scalars, passed as data and
    written into the optimizer state, so the executable depends on the model, mesh and
    optimizer structure only (a sweep's next budget or LR reuses it); None keeps the numbers
    `optimizer` was built with, compiled in.
    """
    init_params = _init_params_fn(model)

    def init(rng: jax.Array, schedule: dict[str, jax.Array] | None) -> TrainState:
        params = init_params(rng)
        opt_state = optimizer.init(params)
        if schedule is not None:
            opt_state = with_schedule(opt_state, schedule)
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state)

    return jax.jit(init, out_shardings=shardings)


def init_train_state(
    model: ModelConfig, optimizer: optax.GradientTransformation, mesh: Mesh, rng: jax.Array
) -> tuple[TrainState, Any]:
    """(state created directly sharded on `mesh`, the state's shardings pytree)."""
    shardings = state_shardings(model, optimizer, mesh)
    return make_init_state(model, optimizer, shardings)(rng, None), shardings


def make_train_step(
    model: ModelConfig,
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    state_shardings: Any,
    steps_per_call: int = 1,
):
    """Jitted train step(s), state donated; metrics {"loss", "grad_norm", "lr"}: f32[k].

    steps_per_call == 1: (state, batch int32 [B, ctx+1]) -> (state, metrics), k = 1.
    steps_per_call == k > 1: (state, batches int32 [k, B, ctx+1], num_steps) -> (state,
    metrics) trains the first `num_steps` (1..k, a traced int32) of the stacked batches in one
    on-device loop; metrics past num_steps are 0. One executable serves every chunk length, so
    a run compiles one step function, not one per chunk length (an eval or checkpoint that
    cuts a chunk short costs no extra compilation).
    grad_norm is the global norm before clipping; lr the (peak-schedule) lr of each update.
    """
    step, arg_shardings = train_step_body(model, optimizer, mesh, state_shardings, steps_per_call)
    return jax.jit(
        sharding.with_activation_rules(step, mesh),
        in_shardings=(state_shardings, *arg_shardings),
        out_shardings=(state_shardings, sharding.replicated(mesh)),
        donate_argnums=0,
        compiler_options=step_compiler_options(_platform(mesh)),
    )


def train_step_body(
    model: ModelConfig,
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    state_shardings: Any,
    steps_per_call: int = 1,
) -> tuple[Any, tuple[Any, ...]]:
    """(the un-jitted step `make_train_step` compiles, the shardings of its non-state args).

    Public so `lab.group_step` can `jax.vmap` the very same step over a run axis.
    """
    if isinstance(steps_per_call, bool) or not isinstance(steps_per_call, int):
        raise ConfigError(f"steps_per_call must be an int >= 1, got {steps_per_call!r}")
    if steps_per_call < 1:
        raise ConfigError(f"steps_per_call must be >= 1, got {steps_per_call}")

    def one_step(state: TrainState, batch_BxT1: jax.Array) -> tuple[TrainState, dict]:
        sharding.check_batch_size(mesh, batch_BxT1.shape[0], model.microbatches)  # at trace
        loss, grads = loss_and_grads(state.params, model, batch_BxT1, state_shardings.params)
        metrics = {
            "loss": loss,
            "grad_norm": optax.tree.norm(grads),
            "lr": current_lr(state.opt_state),
        }
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        return new_state, metrics

    def single(state: TrainState, batch_BxT1: jax.Array) -> tuple[TrainState, dict]:
        state, metrics = one_step(state, batch_BxT1)
        return state, {name: value[None] for name, value in metrics.items()}

    def loop(state: TrainState, batches_KxBxT1: jax.Array, num_steps: jax.Array) -> tuple:
        def body(i: jax.Array, carry: tuple) -> tuple:
            state, metrics = carry
            state, step_metrics = one_step(state, batches_KxBxT1[i])
            metrics = {name: metrics[name].at[i].set(step_metrics[name]) for name in metrics}
            return state, metrics

        zeros = {name: jnp.zeros((steps_per_call,), jnp.float32) for name in METRIC_NAMES}
        return jax.lax.fori_loop(0, num_steps, body, (state, zeros))

    if steps_per_call == 1:
        step, arg_shardings = single, (sharding.batch_sharding(mesh, 2),)
    else:
        step, arg_shardings = loop, (sharding.batch_sharding(mesh, 3), sharding.replicated(mesh))
    return step, arg_shardings


def _platform(mesh: Mesh) -> str:
    return mesh.devices.flat[0].platform


def make_eval_step(model: ModelConfig, mesh: Mesh, state_shardings: Any, stacked: bool = False):
    """Jitted (params, batch) -> (sum of token losses f32, token count i32).

    batch: int32 [B, ctx+1], or with `stacked` a whole eval set [n, B, ctx+1] summed in one
    call (lax.scan), so an eval point costs one dispatch instead of n.
    """

    def eval_step(params: Any, batch_BxT1: jax.Array) -> tuple[jax.Array, jax.Array]:
        return _sum_loss(params, model, batch_BxT1)

    def eval_stack(params: Any, batches_NxBxT1: jax.Array) -> tuple[jax.Array, jax.Array]:
        def add(totals, batch_BxT1):
            loss_sum, count = eval_step(params, batch_BxT1)
            return (totals[0] + loss_sum, totals[1] + count), None

        zeros = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
        return jax.lax.scan(add, zeros, batches_NxBxT1)[0]

    replicated = sharding.replicated(mesh)
    return jax.jit(
        sharding.with_activation_rules(eval_stack if stacked else eval_step, mesh),
        in_shardings=(state_shardings.params, sharding.batch_sharding(mesh, 3 if stacked else 2)),
        out_shardings=(replicated, replicated),
        compiler_options=step_compiler_options(_platform(mesh)),
    )
