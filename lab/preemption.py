"""When to checkpoint and stop: one decision that every process of a run agrees on.

Orbax's save is collective: in a multi-host run every process must save the same step, or
they wait for each other until the coordination service times out. But each process sees
only its own SIGTERM (a preemption notice need not reach every host at once) and its own wall
clock. So at every chunk end the processes exchange two bits, "I was sent SIGTERM" and "my
clock says a time-based save is due", and each bit of the decision is their OR: the same on
every process, so all save the same step, and all stop there when any one was preempted.

The exchange goes through jax.distributed's coordination service (a key per process, a
barrier, one directory read), the channel orbax's own ContinuousCheckpointingPolicy uses for
its time-based decision. It is host-only: no device collective, so the loop still dispatches
chunk n+1 before it reads chunk n. One process exchanges nothing: its own bits are the
decision, as they always were.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import jax

# Tests only: this process's clock runs this many times faster (unequal clocks across hosts).
CLOCK_SPEED_ENV = "SCALING_LAB_TEST_CLOCK_SPEED"
# A barrier waits this long for the slowest process (a dead one is reported sooner by the
# coordination service's heartbeats).
BARRIER_TIMEOUT_MS = 10 * 60 * 1000
_KEY_PREFIX = "scaling_lab/save_decision"
_PREEMPTED, _TIME_DUE = 1, 2
# Every process of a job makes the same sequence of decisions (same runs, same chunks): the
# n-th decision of the process's life is decision n everywhere, also across a sweep's runs.
_decisions = itertools.count()


@dataclasses.dataclass(frozen=True)
class Decision:
    """What all processes decided at one chunk end."""

    preempted: bool  # some process got SIGTERM: save this step, then stop
    time_due: bool  # some process's clock says `every_seconds` passed since the last save


class SaveAgreement:
    """SIGTERM handling and the time-based save clock, agreed across the run's processes.

    Use as a context manager around the loop (it owns SIGTERM meanwhile); call `decide()`
    once per chunk end on every process, and `saved()` after every save.
    """

    def __init__(self, every_seconds: float, *, clock: Callable[[], float] | None = None):
        self._every = every_seconds
        self._clock = clock or _clock()
        self._last_save = self._clock()
        self._signalled = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> SaveAgreement:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self._signalled = True

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            # None: the previous handler was not Python's; the default is the honest fallback.
            previous = signal.SIG_DFL if self._previous is None else self._previous
            signal.signal(signal.SIGTERM, previous)

    def decide(self) -> Decision:
        """This chunk end's decision: the same on every process of the run."""
        bits = _PREEMPTED * self._signalled
        bits |= _TIME_DUE * (self._clock() - self._last_save >= self._every)
        if jax.process_count() > 1:
            bits = agree_or(bits)
        return Decision(preempted=bool(bits & _PREEMPTED), time_due=bool(bits & _TIME_DUE))

    def saved(self) -> None:
        """A checkpoint was just saved (for whatever reason): the time-based clock restarts."""
        self._last_save = self._clock()


def agree_or(bits: int) -> int:
    """The bitwise OR of `bits` over all processes (each must call it, in the same order)."""
    from jax._src import distributed  # the coordination client; orbax reaches it the same way

    client = distributed.global_state.client
    if client is None:
        raise RuntimeError("a multi-process run without jax.distributed.initialize()")
    n, me = next(_decisions), jax.process_index()
    client.key_value_set(f"{_KEY_PREFIX}/{n}/{me}", str(bits))
    client.wait_at_barrier(f"{_KEY_PREFIX}/{n}", BARRIER_TIMEOUT_MS)
    values = client.key_value_dir_get(f"{_KEY_PREFIX}/{n}/")
    if n:  # everyone read decision n-1 before setting n: its key can go
        client.key_value_delete(f"{_KEY_PREFIX}/{n - 1}/{me}")
    if len(values) != jax.process_count():
        raise RuntimeError(f"save decision {n}: {len(values)} of {jax.process_count()} answered")
    agreed = 0
    for _, value in values:
        agreed |= int(value)
    return agreed


def _clock() -> Callable[[], float]:
    speed = float(os.environ.get(CLOCK_SPEED_ENV, "1"))
    if speed == 1:
        return time.monotonic
    return lambda: time.monotonic() * speed
