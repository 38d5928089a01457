"""Sharding in one module: the mesh, the logical axis rules, and every sharding built from them.

Which dimension of which array goes on which mesh axis is decided only by `LOGICAL_AXIS_RULES`,
never per layer. Parameters follow the Flax lm1b idiom:

    boxed = abstract_params(model)                # jax.eval_shape of the boxed init
    specs = nn.get_partition_spec(boxed)          # logical names -> PartitionSpecs of names
    shardings = nn.logical_to_mesh_sharding(specs, mesh, LOGICAL_AXIS_RULES)

(`param_shardings` does exactly that). Optimizer-state leaves take the sharding of the parameter
they mirror (same path suffix and shape); a non-scalar leaf that mirrors none raises instead of
being replicated, since a silently replicated optimizer state is an out-of-memory error later,
far from its cause. Token batches [B, T] and stacks [k, B, T] split B over data x fsdp
(`batch_sharding`). Activations are constrained inside the model by logical name; the rules and
the mesh reach it as context (`activation_rules`), not as constructor arguments.

Pitfalls of jax 0.10 / flax 0.12 this module avoids (DESIGN.md):
- `jax.make_mesh` defaults to Explicit axis types, which break linen's embedding gather and
  `with_sharding_constraint`: meshes here are built with `AxisType.Auto`.
- `jax.set_mesh` (not the deprecated `with mesh:`) is the concrete-mesh context, and it raises
  under `jax.jit`; a traced function therefore enters `jax.sharding.use_abstract_mesh`, the
  context sharding constraints (flax's included) read. Callers outside jit may still wrap
  their own code in `jax.set_mesh(mesh)`.
- `nn.DenseGeneral` with multi-dimensional logical kernels fails under a mesh context: the
  model declares its kernels itself and multiplies with einsum / 2-D dot plus reshape.

The first part (names, rules, shard shapes) is pure Python, so `lab.memory` and sweep planning
use it without loading JAX; JAX and flax load inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from lab.config import MESH_AXES, MeshConfig, ModelConfig
from lab.errors import ConfigError

if TYPE_CHECKING:
    import optax
    from jax.sharding import Mesh, NamedSharding

__all__ = [
    "BATCH_AXES",
    "LOGICAL_AXIS_RULES",
    "MESH_AXES",
    "TOKENS",
    "TOKEN_STACK",
    "abstract_params",
    "activation_rules",
    "batch_sharding",
    "batch_ways",
    "check_batch_size",
    "initialize_distributed",
    "logical_sharding",
    "make_mesh",
    "mesh_axes_for",
    "mirror_shardings",
    "optimizer_state_shardings",
    "param_shardings",
    "replicated",
    "shard_shape",
    "sharded_abstract_params",
    "stacked_batch_sharding",
    "with_activation_rules",
]

# Logical name -> mesh axes, in priority order (flax semantics): a name takes its mesh axes
# only if no other dimension of the same array already uses them. So parameters
# ("vocab", "embed") become P("tensor", "fsdp") while activations ("batch", "seq", "embed")
# become P(("data", "fsdp"), None, None): fsdp is taken by the batch, not split twice.
# "layers" (the stacked axis of scanned blocks) is never split: every device holds its shard
# of every layer.
LOGICAL_AXIS_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("batch", ("data", "fsdp")),
    ("vocab", "tensor"),
    ("heads", "tensor"),
    ("mlp", "tensor"),
    ("embed", "fsdp"),
    ("seq", None),
    ("kv", None),
    ("layers", None),
)
BATCH_AXES: tuple[str, ...] = dict(LOGICAL_AXIS_RULES)["batch"]  # type: ignore[assignment]
TOKENS = ("batch", None)  # a token batch [B, T]
TOKEN_STACK = (None, "batch", None)  # a stack of token batches [k, B, T]


# ---- pure Python: which mesh axes split which dimension ------------------------------------


def mesh_axes_for(
    logical: Sequence[str | None], rules=LOGICAL_AXIS_RULES
) -> tuple[tuple[str, ...], ...]:
    """Mesh axes each dimension is split over, following flax's first-free-rule resolution."""
    result: list[tuple[str, ...] | None] = [None] * len(logical)
    used: set[str] = set()
    for name, mesh in rules:
        if name not in logical or mesh is None:
            continue
        pos = list(logical).index(name)
        axes = (mesh,) if isinstance(mesh, str) else tuple(mesh)
        if result[pos] is None and not used.intersection(axes):
            result[pos] = axes
            used.update(axes)
    return tuple(r or () for r in result)


def shard_shape(
    shape: Sequence[int], logical: Sequence[str | None], mesh_shape: dict[str, int]
) -> tuple[int, ...]:
    """Per-device shape of an array with these logical axes on a mesh (ceil division)."""
    axes = mesh_axes_for(logical)
    return tuple(
        math.ceil(size / math.prod(mesh_shape[a] for a in dim_axes))
        for size, dim_axes in zip(shape, axes, strict=True)
    )


# ---- the mesh and the rules as context ------------------------------------------------------


def make_mesh(
    config: MeshConfig | Sequence[int] | str,
    devices: Sequence[Any] | None = None,
    slices: int | None = None,
) -> Mesh:
    """A (data, fsdp, tensor) mesh over `devices` (default: all), Auto axis types.

    Over several slices (`slices`, default `config.slices`) the mesh is hybrid: the data axis
    is `slices` (over DCN) x the rest (over each slice's ICI), built by
    `mesh_utils.create_hybrid_device_mesh` from the devices' slice indices.
    """
    import jax
    from jax.sharding import AxisType, Mesh

    config = MeshConfig.from_spec(config)
    devices = list(jax.devices() if devices is None else devices)
    shape = config.resolve(len(devices))
    axis_types = (AxisType.Auto,) * len(MESH_AXES)
    slices = config.slices if slices is None else slices
    from jax.experimental import mesh_utils

    if slices == 1:
        try:
            return jax.make_mesh(shape, MESH_AXES, axis_types=axis_types, devices=devices)
        except NotImplementedError:
            # A TPU torus (4x4x4) cannot give each logical axis whole physical axes (8 x 8):
            # split physical axes, as mesh_utils allows on request.
            grid = mesh_utils.create_device_mesh(shape, devices, allow_split_physical_axes=True)
            return Mesh(grid, MESH_AXES, axis_types=axis_types)

    found = len({getattr(d, "slice_index", 0) for d in devices})
    if found != slices:
        raise ConfigError(f"the mesh asks for {slices} slices but the devices span {found}")
    if shape[0] % slices:
        raise ConfigError(
            f"mesh data = {shape[0]} does not split over {slices} slices; the data axis "
            "spans the slices (DCN), so make it a multiple of the slice count"
        )
    ici = (shape[0] // slices, *shape[1:])
    grid = mesh_utils.create_hybrid_device_mesh(ici, (slices, 1, 1), devices)
    return Mesh(grid, MESH_AXES, axis_types=axis_types)


@contextlib.contextmanager
def activation_rules(mesh: Mesh | None) -> Iterator[None]:
    """Inside: the model's logical activation constraints resolve through LOGICAL_AXIS_RULES on
    `mesh` (works under jax.jit, unlike jax.set_mesh). With None, or outside, they are no-ops:
    the model is the plain unsharded reference."""
    if mesh is None:
        yield
        return
    import flax.linen as nn
    import jax

    with (
        jax.sharding.use_abstract_mesh(mesh.abstract_mesh),
        nn.logical_axis_rules(LOGICAL_AXIS_RULES),
    ):
        yield


def with_activation_rules(fn: Callable, mesh: Mesh | None) -> Callable:
    """`fn` run inside `activation_rules(mesh)`: wrap a function before jax.jit, so it is traced
    (called, lowered or compiled ahead of time) with the rules whoever calls it."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with activation_rules(mesh):
            return fn(*args, **kwargs)

    return wrapped


# ---- shardings of arrays ---------------------------------------------------------------------


def replicated(mesh: Mesh) -> NamedSharding:
    from jax.sharding import NamedSharding, PartitionSpec

    return NamedSharding(mesh, PartitionSpec())


def logical_sharding(mesh: Mesh, names: Sequence[str | None]) -> NamedSharding:
    """NamedSharding for an array with these logical axis names."""
    import flax.linen as nn
    from jax.sharding import NamedSharding

    return NamedSharding(mesh, nn.logical_to_mesh_axes(tuple(names), LOGICAL_AXIS_RULES))


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
    """Token batch [B, T] (ndim 2) or stack of batches [k, B, T] (ndim 3): B on data x fsdp."""
    if ndim not in (2, 3):
        raise ConfigError(f"token batches are [B, T] or [k, B, T], got {ndim} dimensions")
    return logical_sharding(mesh, TOKENS if ndim == 2 else TOKEN_STACK)


def stacked_batch_sharding(mesh: Mesh) -> NamedSharding:
    """`batch_sharding(mesh, 3)`: a stack [k, B, T], one batch per scanned step."""
    return batch_sharding(mesh, 3)


def batch_ways(mesh: Mesh) -> int:
    """Devices a batch is split over (data x fsdp)."""
    return math.prod(mesh.shape[a] for a in BATCH_AXES)


def check_batch_size(mesh: Mesh, batch_size: int, microbatches: int = 1) -> None:
    """Each of the `microbatches` slices of the global batch must split evenly over data x fsdp."""
    ways = batch_ways(mesh) * microbatches
    if batch_size % ways:
        split = f"{microbatches} microbatches x " if microbatches > 1 else ""
        raise ConfigError(
            f"batch size {batch_size} does not split over {split}data x fsdp = {ways} "
            f"devices; use a multiple of {ways}"
        )


# ---- parameters and optimizer state ----------------------------------------------------------


@functools.lru_cache(maxsize=16)
def abstract_params(model: ModelConfig) -> Any:
    """Shapes of the parameters, boxed with their logical axis names (one trace per model)."""
    import jax
    import jax.numpy as jnp

    from lab.model import Transformer

    tokens = jax.ShapeDtypeStruct((1, model.ctx), jnp.int32)
    return jax.eval_shape(Transformer(model).init, jax.random.key(0), tokens)["params"]


def param_shardings(model: ModelConfig, mesh: Mesh) -> Any:
    """NamedSharding of every parameter, from its logical axis names and the rules."""
    import flax.linen as nn

    specs = nn.get_partition_spec(abstract_params(model))
    return nn.logical_to_mesh_sharding(specs, mesh, LOGICAL_AXIS_RULES)


def sharded_abstract_params(model: ModelConfig, mesh: Mesh) -> Any:
    """ShapeDtypeStructs of the parameters carrying their shardings (restore, AOT lowering)."""
    import flax.linen as nn
    import jax

    return jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
        nn.meta.unbox(abstract_params(model)),
        param_shardings(model, mesh),
    )


def _key_names(path: tuple) -> tuple:
    return tuple(getattr(k, "key", getattr(k, "name", getattr(k, "idx", None))) for k in path)


def mirror_shardings(tree: Any, model: ModelConfig, mesh: Mesh, what: str = "state") -> Any:
    """Sharding of each leaf of `tree` (shapes or arrays): that of the parameter it mirrors
    (its path ends with the parameter's path, same shape); scalars are replicated.

    Raises ConfigError for a non-scalar leaf that mirrors no parameter (e.g. a factored second
    moment): replicating it silently could cost a full copy of the model on every device."""
    import flax.linen as nn
    import jax

    shapes = nn.meta.unbox(abstract_params(model))
    by_path = {
        _key_names(path): (sharding, tuple(shape.shape))
        for (path, sharding), shape in zip(
            jax.tree_util.tree_leaves_with_path(param_shardings(model, mesh)),
            jax.tree.leaves(shapes),
            strict=True,
        )
    }

    def pick(path: tuple, leaf: Any) -> NamedSharding:
        names, shape = _key_names(path), tuple(leaf.shape)
        for start in range(len(names)):
            hit = by_path.get(names[start:])
            if hit and hit[1] == shape:
                return hit[0]
        if not shape:
            return replicated(mesh)
        where = "/".join(str(n) for n in names)
        raise ConfigError(
            f"{what} leaf {where} of shape {shape} mirrors no parameter (no parameter path "
            "ends its path with this shape), so lab.sharding cannot tell how to split it and "
            "will not replicate it on every device; give it a parameter's path and shape "
            "(as optax's per-parameter states have) or add its sharding to lab.sharding"
        )

    return jax.tree_util.tree_map_with_path(pick, tree)


def optimizer_state_shardings(
    optimizer: optax.GradientTransformation, model: ModelConfig, mesh: Mesh
) -> Any:
    """Shardings of `optimizer.init(params)`'s leaves (see `mirror_shardings`), traced only."""
    import flax.linen as nn
    import jax

    abstract_state = jax.eval_shape(optimizer.init, nn.meta.unbox(abstract_params(model)))
    return mirror_shardings(abstract_state, model, mesh, what="optimizer state")


# ---- multi-host ----------------------------------------------------------------------------


def initialize_distributed(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Multi-host start-up (wraps jax.distributed.initialize); call before any other JAX use.

    With no arguments JAX auto-detects the cluster (TPU pods, SLURM, ...). On CPU, cross-process
    collectives need gloo: set it before initialising.
    """
    import jax

    # Only affects CPU devices; a jax without the option has nothing to set.
    with contextlib.suppress(AttributeError, KeyError, ValueError):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    # The training loop agrees on preemption itself (lab.preemption). jax's notifier would
    # otherwise swallow a SIGTERM outside the loop (the process would train on, deaf to it).
    jax.config.update("jax_enable_preemption_service", False)
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id
    )
