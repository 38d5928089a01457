"""Host batches -> global jax.Arrays: the only module of `lab.data` that imports JAX.

Every process passes only its own rows; `jax.make_array_from_process_local_data` assembles the
global [B, T] (or [k, B, T]) array, sharded on batch over the mesh's ('data', 'fsdp') axes.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh

from lab.data.errors import DataError


def _global(local: np.ndarray, mesh: Mesh, batch_axis: int) -> jax.Array:
    from lab.sharding import batch_sharding

    local = np.asarray(local)
    sharding = batch_sharding(mesh, local.ndim)  # [B, T] or [k, B, T]: B on data x fsdp
    shape = list(local.shape)
    shape[batch_axis] *= jax.process_count()
    return jax.make_array_from_process_local_data(sharding, local, tuple(shape))


def global_batch(local_batch: np.ndarray, mesh: Mesh) -> jax.Array:
    """[local_B, T] rows of this process -> global [B, T] array sharded on batch."""
    if np.ndim(local_batch) != 2:
        raise DataError(f"global_batch takes [B, T], got shape {np.shape(local_batch)}")
    return _global(local_batch, mesh, 0)


def global_batch_stack(local_batches: np.ndarray, mesh: Mesh) -> jax.Array:
    """[k, local_B, T] rows of this process -> global [k, B, T] (for steps_per_call > 1)."""
    if np.ndim(local_batches) != 3:
        raise DataError(f"global_batch_stack takes [k, B, T], got shape {np.shape(local_batches)}")
    return _global(local_batches, mesh, 1)
