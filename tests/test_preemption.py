"""SaveAgreement on one process: its own SIGTERM and clock decide, with no exchange at all
(the multi-process agreement is tests/test_multihost_preemption.py)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from lab import preemption
from lab.preemption import SaveAgreement


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_process_decides_alone_from_its_clock_and_its_sigterm(monkeypatch):
    def no_exchange(bits: int) -> int:
        raise AssertionError("one process must not exchange its decision")

    monkeypatch.setattr(preemption, "agree_or", no_exchange)
    clock = FakeClock()
    before = signal.getsignal(signal.SIGTERM)
    with SaveAgreement(60.0, clock=clock) as agreement:
        assert agreement.decide() == preemption.Decision(preempted=False, time_due=False)
        clock.now += 59.9
        assert not agreement.decide().time_due
        clock.now += 0.1
        assert agreement.decide().time_due  # 60 s since it started
        agreement.saved()
        assert not agreement.decide().time_due  # a save restarts the clock
        os.kill(os.getpid(), signal.SIGTERM)  # handled: the test process lives on
        decided = agreement.decide()
        assert decided.preempted and not decided.time_due
    assert signal.getsignal(signal.SIGTERM) is before  # handed back


def test_the_test_clock_speed_scales_the_wall_clock(monkeypatch):
    monkeypatch.setenv(preemption.CLOCK_SPEED_ENV, "1e9")
    with SaveAgreement(3600.0) as agreement:
        time.sleep(0.001)
        assert agreement.decide().time_due  # a millisecond is 11 days at 1e9 x


def test_exchanging_without_jax_distributed_is_an_error():
    with pytest.raises(RuntimeError, match=r"jax\.distributed\.initialize\(\)"):
        preemption.agree_or(1)
