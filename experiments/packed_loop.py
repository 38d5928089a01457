"""The runner on sub-meshes: a worker whose process sees several devices trains small runs
side by side, each on the devices `[packing] devices_per_run` gives its size.

    [packing]
    devices_per_run = {"2e5" = 2, "2e6" = 4}   # or an int, or "rule"; "all" (default): off

The main thread claims runs in the runner's order (longest first) and starts each in a
thread on a free, aligned block of devices from `DevicePool` (`lab.train.train(...,
devices=block)`; JAX releases the GIL while a step runs, so the blocks' steps overlap).
When no block of the size the next run needs is free, it waits for a run to end. The
sweep's files (tables, claims, announcements) are written under one lock, from whichever
thread finished. A run's numbers depend only on its config and its mesh's shape, so a run
trained on devices 4-5 ends bitwise where it ends alone on devices 0-1.

Used for one process (not `--jobs` children, whose processes are CPU-core packing, nor a
multi-process run, where every process trains the same run); a group of one shape
(`experiments.grouping`) is not formed here: each run trains alone on its block.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from experiments.grid import GridPoint
from lab.errors import ConfigError


class DevicePool:
    """Devices handed out in aligned blocks: a block of k starts at a multiple of k (on TPU
    and NVLink hosts, `jax.devices()` order keeps such blocks neighbours)."""

    def __init__(self, devices: list[Any]) -> None:
        self.devices = list(devices)
        self.busy = [False] * len(self.devices)

    def take(self, count: int) -> list[Any] | None:
        """A free aligned block of `count` devices, now marked busy; None if there is none."""
        if count < 1 or len(self.devices) % count:
            raise ConfigError(
                f"a run asks for {count} devices, which does not divide this worker's "
                f"{len(self.devices)}; set [packing] devices_per_run to a divisor of it"
            )
        for start in range(0, len(self.devices), count):
            if not any(self.busy[start : start + count]):
                self.busy[start : start + count] = [True] * count
                return self.devices[start : start + count]
        return None

    def give_back(self, block: list[Any]) -> None:
        for device in block:
            self.busy[self.devices.index(device)] = False

    @property
    def idle(self) -> bool:
        return not any(self.busy)


def packing_applies(spec: Any, points: list[GridPoint], device_count: int) -> bool:
    """Some run gets fewer devices than the worker has (otherwise the plain loop)."""
    return device_count > 1 and any(
        spec.packing.devices_for(p.N, device_count, p.config.train_batch_size) < device_count
        for p in points
    )


def packed_loop(
    choose: Callable[[], int],
    order: list[GridPoint],
    devices_needed: Callable[[GridPoint], int],
    train_on: Callable[[GridPoint, list[Any]], None],
    finish: Callable[[GridPoint, bool], None],
    devices: list[Any],
    idle_wait_s: float,
    done: int,
) -> None:
    """Run `train_on(point, block)` in threads until `choose` has nothing left.

    `choose()` returns an index into `order` of a run it has claimed, or a negative number:
    nothing claimable now (`done`: nothing this worker can run; else: wait for other
    workers). While runs of this worker are in flight, either means "wait for one to end"
    (a branch may be waiting for a trunk of ours). `finish(point, trained)` (release the
    claim; if trained, update the tables and announce) runs under the loop's lock. The first
    exception of a run's thread is re-raised once every thread has ended.
    """
    pool = DevicePool(devices)
    changed = threading.Condition()
    errors: list[BaseException] = []
    threads: list[threading.Thread] = []

    def run(point: GridPoint, block: list[Any]) -> None:
        trained = False
        try:
            train_on(point, block)
            trained = True
        except BaseException as error:  # surfaced in the loop's thread
            errors.append(error)
        finally:
            with changed:
                try:
                    finish(point, trained)
                finally:
                    pool.give_back(block)
                    changed.notify_all()

    try:
        while not errors:
            with changed:
                choice = choose()
                if choice < 0:
                    if choice == done and pool.idle:  # nothing left that this worker can run
                        break
                    changed.wait(idle_wait_s)  # others' runs, or ours in flight, may end
                    continue
                point = order[choice]
                block = pool.take(devices_needed(point))
                while block is None and not errors:  # claimed: wait for a free block
                    changed.wait()
                    block = pool.take(devices_needed(point))
                if block is None:
                    finish(point, False)
                    break
                thread = threading.Thread(target=run, args=(point, block), daemon=True)
                threads.append(thread)
                thread.start()
    finally:
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
