"""Sharded initialisation, train step and eval step: pure jitted functions over a TrainState.

    state, shardings = init_train_state(model, optimizer, mesh, rng)       # born sharded
    train_step = make_train_step(model, optimizer, mesh, shardings, steps_per_call=k)
    state, metrics = train_step(state, batch)         # k = 1: batch int32 [B, ctx+1]
    state, metrics = train_step(state, batches, n)    # k > 1: [k, B, ctx+1], first n <= k

Shardings come from the parameters' logical axis names and `LOGICAL_AXIS_RULES`; optimizer
state leaves (Adam moments) take the sharding of the parameter they mirror. The state is
donated, so a step updates it in place.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lab.config import ModelConfig
from lab.errors import ConfigError
from lab.model import Rules, Transformer
from lab.optim import current_lr, with_schedule
from lab.runtime.compiler_options import step_compiler_options
from lab.sharding import LOGICAL_AXIS_RULES, batch_sharding_for, replicated

METRIC_NAMES = ("loss", "grad_norm", "lr")


class TrainState(flax.struct.PyTreeNode):
    """Everything a step changes: a plain pytree (checkpointable, donatable)."""

    step: jax.Array
    params: Any
    opt_state: Any


def loss_fn(
    params: Any, model: ModelConfig, batch: jax.Array, rules: Rules = None, mesh: Mesh | None = None
) -> jax.Array:
    """Mean next-token cross-entropy (fp32) of int32 batch [B, T+1]; unsharded without rules."""
    sum_loss, num_tokens = _sum_loss(params, model, batch, rules, mesh)
    return sum_loss / num_tokens


def _sum_loss(params, model, batch_BxT1, rules, mesh) -> tuple[jax.Array, jax.Array]:
    inputs_BxT, targets_BxT = batch_BxT1[:, :-1], batch_BxT1[:, 1:]
    logits_BxTxV = Transformer(model, rules, mesh).apply({"params": params}, inputs_BxT)
    log_z_BxT = jax.nn.logsumexp(logits_BxTxV, axis=-1)
    target_logit_BxT = jnp.take_along_axis(logits_BxTxV, targets_BxT[..., None], axis=-1)[..., 0]
    return jnp.sum(log_z_BxT - target_logit_BxT), jnp.asarray(targets_BxT.size, jnp.int32)


@functools.lru_cache(maxsize=16)
def _abstract_params(model: ModelConfig) -> Any:
    """Shapes of the parameters, boxed with their logical axis names (one trace per model)."""
    tokens = jax.ShapeDtypeStruct((1, model.ctx), jnp.int32)
    return jax.eval_shape(Transformer(model).init, jax.random.key(0), tokens)["params"]


def param_shardings(model: ModelConfig, mesh: Mesh) -> Any:
    """NamedSharding of every parameter, from its logical axis names and the rules."""
    specs = nn.get_partition_spec(_abstract_params(model))
    return nn.logical_to_mesh_sharding(specs, mesh, LOGICAL_AXIS_RULES)


def _key_names(path: tuple) -> tuple:
    return tuple(getattr(k, "key", getattr(k, "name", getattr(k, "idx", None))) for k in path)


def _mirror_shardings(tree: Any, params_sharding: Any, params_shapes: Any, mesh: Mesh) -> Any:
    """Sharding for each leaf of `tree` (e.g. opt state): a parameter's if it mirrors one."""
    by_path: dict[tuple, tuple[NamedSharding, tuple[int, ...]]] = {}
    for (path, sharding), shape in zip(
        jax.tree_util.tree_leaves_with_path(params_sharding),
        jax.tree_util.tree_leaves(params_shapes),
        strict=True,
    ):
        by_path[_key_names(path)] = (sharding, tuple(shape.shape))

    def pick(path: tuple, leaf: Any) -> NamedSharding:
        names = _key_names(path)
        for start in range(len(names)):
            hit = by_path.get(names[start:])
            if hit and hit[1] == tuple(leaf.shape):
                return hit[0]
        return NamedSharding(mesh, PartitionSpec())

    return jax.tree_util.tree_map_with_path(pick, tree)


def state_shardings(model: ModelConfig, optimizer: optax.GradientTransformation, mesh: Mesh) -> Any:
    """A TrainState of NamedShardings: parameters by the rules, optimizer leaves mirroring them."""
    abstract_params = nn.meta.unbox(_abstract_params(model))
    p_shardings = param_shardings(model, mesh)
    return TrainState(
        step=replicated(mesh),
        params=p_shardings,
        opt_state=_mirror_shardings(
            jax.eval_shape(optimizer.init, abstract_params), p_shardings, abstract_params, mesh
        ),
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
    if isinstance(steps_per_call, bool) or not isinstance(steps_per_call, int):
        raise ConfigError(f"steps_per_call must be an int >= 1, got {steps_per_call!r}")
    if steps_per_call < 1:
        raise ConfigError(f"steps_per_call must be >= 1, got {steps_per_call}")
    grad_fn = jax.value_and_grad(
        functools.partial(loss_fn, model=model, rules=LOGICAL_AXIS_RULES, mesh=mesh)
    )

    def one_step(state: TrainState, batch_BxT1: jax.Array) -> tuple[TrainState, dict]:
        loss, grads = grad_fn(state.params, batch=batch_BxT1)
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
        step, arg_shardings = single, (batch_sharding_for(mesh, 2),)
    else:
        step, arg_shardings = loop, (batch_sharding_for(mesh, 3), replicated(mesh))
    return jax.jit(
        step,
        in_shardings=(state_shardings, *arg_shardings),
        out_shardings=(state_shardings, replicated(mesh)),
        donate_argnums=0,
        compiler_options=step_compiler_options(_platform(mesh)),
    )


def _platform(mesh: Mesh) -> str:
    return mesh.devices.flat[0].platform


def make_eval_step(model: ModelConfig, mesh: Mesh, state_shardings: Any, stacked: bool = False):
    """Jitted (params, batch) -> (sum of token losses f32, token count i32).

    batch: int32 [B, ctx+1], or with `stacked` a whole eval set [n, B, ctx+1] summed in one
    call (lax.scan), so an eval point costs one dispatch instead of n.
    """

    def eval_step(params: Any, batch_BxT1: jax.Array) -> tuple[jax.Array, jax.Array]:
        return _sum_loss(params, model, batch_BxT1, LOGICAL_AXIS_RULES, mesh)

    def eval_stack(params: Any, batches_NxBxT1: jax.Array) -> tuple[jax.Array, jax.Array]:
        def add(totals, batch_BxT1):
            loss_sum, count = eval_step(params, batch_BxT1)
            return (totals[0] + loss_sum, totals[1] + count), None

        zeros = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
        return jax.lax.scan(add, zeros, batches_NxBxT1)[0]

    return jax.jit(
        eval_stack if stacked else eval_step,
        in_shardings=(state_shardings.params, batch_sharding_for(mesh, 3 if stacked else 2)),
        out_shardings=(replicated(mesh), replicated(mesh)),
        compiler_options=step_compiler_options(_platform(mesh)),
    )
