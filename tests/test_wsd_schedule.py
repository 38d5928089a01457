"""WSD schedules: every step's lr against the closed form, computed here in float64."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lab.config import OptimizerConfig
from lab.errors import ConfigError
from lab.optim import make_schedule, schedule_numbers


def closed_form(
    step: int, total: int, peak: float, final: float, warmup: int, frac: float, shape: str
) -> float:
    """Hagele et al.'s WSD by hand: warmup, constant peak, cooldown over round(frac * S)."""
    cooldown = 0 if frac == 0 else min(total, max(1, round(frac * total)))
    start = total - cooldown
    warmup = min(warmup, total - 1, start)  # warmup never reaches past the last step
    if step < warmup:
        return peak * (step + 1) / (warmup + 1)
    if step < start:
        return peak
    p = (step - start + 1) / cooldown
    g = 1 - p if shape == "linear" else 1 - math.sqrt(p)
    return final + (peak - final) * g


@pytest.mark.parametrize("shape", ["linear", "1-sqrt"])
@pytest.mark.parametrize("total", [1, 2, 7, 50, 333])
@pytest.mark.parametrize("frac", [0.0, 0.1, 0.2, 0.5])
def test_wsd_lr_at_every_step_equals_closed_form(shape: str, total: int, frac: float) -> None:
    config = OptimizerConfig(
        peak_lr=3e-3,
        warmup_steps=5,
        final_lr_fraction=0.1,
        schedule="wsd",
        cooldown_fraction=frac,
        cooldown_shape=shape,
    )
    lr = np.asarray(make_schedule(config, total)(np.arange(total)), np.float64)
    want = [closed_form(t, total, 3e-3, 3e-4, 5, frac, shape) for t in range(total)]
    np.testing.assert_allclose(lr, want, rtol=2e-6, atol=0)
    start = total - config.cooldown_steps(total)
    stable = lr[min(5, start) : start]
    assert np.all(stable == np.float32(3e-3))  # the stable phase is the peak, bitwise
    if frac > 0:
        assert lr[-1] == pytest.approx(3e-4, rel=1e-6)  # the last step at the final lr


def test_trunk_and_branch_agree_before_the_cooldown() -> None:
    """A trunk (no cooldown) and a WSD run of any length give bitwise equal lrs before s."""
    trunk = OptimizerConfig(warmup_steps=10, schedule="wsd", cooldown_fraction=0.0)
    branch = OptimizerConfig(warmup_steps=10, schedule="wsd", cooldown_fraction=0.2)
    for total in (60, 125, 400):
        start = total - branch.cooldown_steps(total)
        steps = np.arange(start)
        a = np.asarray(make_schedule(trunk, 1000)(steps))
        b = np.asarray(make_schedule(branch, total)(steps))
        assert np.array_equal(a, b)


def test_cosine_numbers_unchanged_and_hash_kept() -> None:
    """The cosine default writes no WSD keys (run ids of cosine sweeps stay the same)."""
    config = OptimizerConfig()
    assert "schedule" not in config.to_dict() and "cooldown_fraction" not in config.to_dict()
    assert schedule_numbers(config, 100)["half_span"] == pytest.approx((3e-3 - 3e-4) / 2)
    assert schedule_numbers(OptimizerConfig(schedule="wsd"), 100)["half_span"] < 0  # WSD's mark
    wsd = OptimizerConfig(schedule="wsd")
    assert wsd.to_dict()["schedule"] == "wsd"
    assert OptimizerConfig.from_dict(wsd.to_dict()) == wsd


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("schedule", "step", "unknown schedule"),
        ("cooldown_shape", "sqrt", "unknown cooldown_shape"),
        ("cooldown_fraction", 1.0, "cooldown_fraction must be in"),
    ],
)
def test_bad_schedule_settings(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        OptimizerConfig(**{field: value})
