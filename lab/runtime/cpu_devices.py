"""One XLA CPU device per core, so a CPU's cores train data-parallel like GPUs do.

A training step of a small model is a long chain of small ops. On one CPU device XLA runs them
one after another, each split over the intra-op thread pool, and the cores wait on each other
at every op: at ~1M params one device reaches ~40% of the machine's matmul peak on 2 cores.
Exposing one device per core and splitting the batch over them (the lab's ordinary data
sharding, `mesh.data = -1`) gives each core its own stream of work and costs one gradient
all-reduce per step: with the YNNPACK step options (lab.compiler_options), a median 55%
at 1M params and 65-75% at 10M (bench/throughput.py).

The device count is fixed when JAX's backends start, so `use_cpu_devices` must run before
the first JAX operation (CLIs call it right after parsing their arguments).
"""

from __future__ import annotations

import os

from lab.errors import ConfigError

AUTO = "auto"


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def resolve_cpu_devices(value: int | str) -> int:
    """A device count from an int or a string: a positive number, or 'auto' (one per core)."""
    if isinstance(value, str):
        if value.strip().lower() == AUTO:
            return usable_cores()
        try:
            value = int(value)
        except ValueError:
            raise ConfigError(
                f"CPU device count must be a positive integer or '{AUTO}', got {value!r}"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"CPU device count must be a positive integer or '{AUTO}', got {value!r}")
    return value


def use_cpu_devices(value: int | str) -> int:
    """Expose `value` CPU devices ('auto': one per usable core); returns the count.

    Only CPU devices are affected; on a GPU/TPU host the accelerators stay the default devices.
    """
    import jax

    count = resolve_cpu_devices(value)
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError as error:  # JAX raises once its backends are running
        raise ConfigError(
            f"cannot set {count} CPU devices: JAX has already started its devices ({error}). "
            "Choose the CPU device count before any JAX computation in this process."
        ) from None
    return count
