"""Small runs side by side: the devices split into sub-meshes, one run (or group) on each.

    slots = sub_meshes(devices_per_run=2)                  # 8 devices -> 4 lists of 2
    results = train_packed(configs, out_dirs, devices_per_run=2)

A run whose model is too small to keep a whole slice busy trains on a few devices while
other runs train on the rest, from one process: each slot is a thread that takes the next
run from a shared queue and calls `lab.train.train(..., devices=slot)` (JAX releases the
GIL while a step runs, so the slots' steps overlap). A run's numbers depend only on its
config and its mesh's shape, so a packed run on devices 4-5 ends bitwise where the same run
alone on devices 0-1 ends. On a CPU host the sweep runner's `--jobs k` (one process per
core) is this with processes; on a TPU slice or a multi-GPU host it keeps every chip busy
with an IsoFLOP grid's smallest sizes.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lab.errors import ConfigError
from lab.run_config import RunConfig


def sub_meshes(devices_per_run: int, devices: Sequence[Any] | None = None) -> list[list[Any]]:
    """`devices` (default: all) cut into consecutive slots of `devices_per_run` (neighbours on
    the interconnect when the device order follows it, as `jax.devices()` does)."""
    import jax

    pool = list(jax.devices() if devices is None else devices)
    if devices_per_run < 1 or len(pool) % devices_per_run:
        raise ConfigError(
            f"devices_per_run={devices_per_run} does not divide the {len(pool)} devices; "
            f"use a divisor of {len(pool)}"
        )
    return [pool[i : i + devices_per_run] for i in range(0, len(pool), devices_per_run)]


def devices_for(num_params: float, params_per_device: float, total: int, batch: int) -> int:
    """The packing rule: the smallest power of two >= num_params / params_per_device, capped
    by the devices there are, and halved until it splits the batch into whole rows."""
    want = 1
    while want < num_params / params_per_device and want * 2 <= total:
        want *= 2
    while want > 1 and (batch % want or total % want):
        want //= 2
    return want


def run_in_slots(jobs: Sequence[Callable[[list[Any]], Any]], slots: list[list[Any]]) -> list[Any]:
    """Call each job with a slot's devices, as many at once as there are slots; results in
    order. The first exception is re-raised once every slot has stopped."""
    todo: queue.Queue[int] = queue.Queue()
    for index in range(len(jobs)):
        todo.put(index)
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []

    def worker(devices: list[Any]) -> None:
        while not errors:
            try:
                index = todo.get_nowait()
            except queue.Empty:
                return
            try:
                results[index] = jobs[index](devices)
            except BaseException as error:  # surfaced in the caller's thread
                errors.append(error)

    threads = [threading.Thread(target=worker, args=(slot,), daemon=True) for slot in slots]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def train_packed(
    configs: Sequence[RunConfig],
    out_dirs: Sequence[str | Path],
    *,
    devices_per_run: int,
    devices: Sequence[Any] | None = None,
    compilation_cache: str | None = "default",
) -> list[dict[str, Any]]:
    """Train every run, each on a sub-mesh of `devices_per_run` devices, the slots at once."""
    from lab.train import train

    if len(configs) != len(out_dirs):
        raise ConfigError(f"{len(configs)} configs but {len(out_dirs)} run directories")

    def job(config: RunConfig, out: str | Path) -> Callable[[list[Any]], Any]:
        return lambda slot: train(
            config, out, progress=False, compilation_cache=compilation_cache, devices=slot
        )

    jobs = [job(c, o) for c, o in zip(configs, out_dirs, strict=True)]
    return run_in_slots(jobs, sub_meshes(devices_per_run, devices))
