"""Logical axis names -> mesh axes (pure Python, so memory estimates need no JAX).

Rules are in priority order (flax semantics): a logical name takes its mesh axis only if no
other dimension of the same array already uses it. So params ("vocab", "embed") become
P("tensor", "fsdp") while activations ("batch", "seq", "embed") become
P(("data", "fsdp"), None, None): fsdp is taken by the batch, the activation is not split twice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

MESH_AXES = ("data", "fsdp", "tensor")

LOGICAL_AXIS_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("batch", ("data", "fsdp")),
    ("vocab", "tensor"),
    ("heads", "tensor"),
    ("mlp", "tensor"),
    ("embed", "fsdp"),
    ("seq", None),
    ("kv", None),
)


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
