"""Device mesh, logical-axis shardings and multi-host start-up.

The mesh has axes ('data', 'fsdp', 'tensor') with Auto axis types: `jax.make_mesh` defaults to
Explicit axes on jax 0.10, which breaks linen's embedding gather and sharding constraints.
Which array dimension goes on which mesh axis is decided only by `LOGICAL_AXIS_RULES`
(`lab.axis_rules`), never per layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from lab.axis_rules import LOGICAL_AXIS_RULES, MESH_AXES
from lab.config import MeshConfig
from lab.errors import ConfigError

__all__ = [
    "LOGICAL_AXIS_RULES",
    "MESH_AXES",
    "batch_sharding",
    "initialize_distributed",
    "logical_sharding",
    "make_mesh",
    "replicated",
    "stacked_batch_sharding",
]

BATCH_AXES = ("data", "fsdp")


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
    config = MeshConfig.from_spec(config)
    devices = list(jax.devices() if devices is None else devices)
    shape = config.resolve(len(devices))
    axis_types = (AxisType.Auto,) * len(MESH_AXES)
    slices = config.slices if slices is None else slices
    if slices == 1:
        return jax.make_mesh(shape, MESH_AXES, axis_types=axis_types, devices=devices)
    from jax.experimental import mesh_utils

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


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding of a token batch [B, T]: B split over data x fsdp."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES, None))


def stacked_batch_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding of a stack of batches [k, B, T] (one per scanned step)."""
    return NamedSharding(mesh, PartitionSpec(None, BATCH_AXES, None))


def batch_sharding_for(mesh: Mesh, ndim: int) -> NamedSharding:
    """`batch_sharding` for ndim 2, `stacked_batch_sharding` for ndim 3."""
    if ndim not in (2, 3):
        raise ConfigError(f"token batches are [B, T] or [k, B, T], got {ndim} dimensions")
    return batch_sharding(mesh) if ndim == 2 else stacked_batch_sharding(mesh)


def logical_sharding(mesh: Mesh, names: Sequence[str | None]) -> NamedSharding:
    """NamedSharding for an array with these logical axis names."""
    import flax.linen as nn

    return NamedSharding(mesh, nn.logical_to_mesh_axes(tuple(names), LOGICAL_AXIS_RULES))


def check_batch_size(mesh: Mesh, batch_size: int) -> None:
    """The global batch must split evenly over data x fsdp."""
    ways = int(np.prod([mesh.shape[a] for a in BATCH_AXES]))
    if batch_size % ways:
        raise ConfigError(
            f"batch size {batch_size} does not split over data x fsdp = {ways} devices; "
            f"use a multiple of {ways}"
        )


def initialize_distributed(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Multi-host start-up (wraps jax.distributed.initialize); call before any other JAX use.

    With no arguments JAX auto-detects the cluster (TPU pods, SLURM, ...). On CPU, cross-process
    collectives need gloo: set it before initialising.
    """
    # Only affects CPU devices; a jax without the option has nothing to set.
    with contextlib.suppress(AttributeError, KeyError, ValueError):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id
    )
