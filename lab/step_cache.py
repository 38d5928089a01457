"""A worker process's jitted run functions, kept between runs of the same shape.

A sweep worker trains many runs in one process, and an IsoFLOP grid repeats each model shape
across budgets. Since the schedule's numbers are optimizer state (lab.optim), every run of a
shape on a mesh shares its init, train and eval functions; keeping the jitted objects lets
the next run skip tracing, lowering and the compilation-cache lookup altogether (JAX's own
per-function cache then hits). Keyed by everything the compiled code depends on (the model
config includes scan_layers, remat and microbatches).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple

import optax
from jax.sharding import Mesh

from lab.config import ModelConfig, OptimizerConfig
from lab.optim import update_signature
from lab.train_step import make_eval_step, make_init_state, make_train_step, state_shardings

MAX_SHAPES = 16  # small executables; cpu_study has 9 shapes, a worker keeps them all


class RunFunctions(NamedTuple):
    init_state: Any  # jitted (rng, schedule arrays) -> TrainState
    train_step: Any  # jitted, see lab.train_step.make_train_step
    eval_stack: Any  # jitted (params, [n, B, T+1]) -> (loss sum, tokens)


_memo: OrderedDict[tuple, RunFunctions] = OrderedDict()


def run_functions(
    model: ModelConfig,
    optimizer_config: OptimizerConfig,
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    steps_per_call: int,
) -> RunFunctions:
    """The run's jitted functions; `optimizer` must be built from `optimizer_config` and `model`."""
    key = (model, update_signature(optimizer_config), mesh, steps_per_call)
    if key in _memo:
        _memo.move_to_end(key)
        return _memo[key]
    shardings = state_shardings(model, optimizer, mesh)
    functions = RunFunctions(
        init_state=make_init_state(model, optimizer, shardings),
        train_step=make_train_step(model, optimizer, mesh, shardings, steps_per_call),
        eval_stack=make_eval_step(model, mesh, shardings, stacked=True),
    )
    _memo[key] = functions
    while len(_memo) > MAX_SHAPES:
        _memo.popitem(last=False)
    return functions


def clear() -> None:
    """Forget every kept function (tests; or to free executables)."""
    _memo.clear()
