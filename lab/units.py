"""FLOPs <-> PF-days and accelerator-hours: the units budgets are quoted in."""

from __future__ import annotations

PF_DAY_FLOPS = 8.64e19  # 1e15 FLOP/s x 86,400 s


def flops_to_pf_days(flops: float) -> float:
    """FLOPs -> petaFLOP/s-days."""
    return flops / PF_DAY_FLOPS


def pf_days_to_flops(pf_days: float) -> float:
    """petaFLOP/s-days -> FLOPs."""
    return pf_days * PF_DAY_FLOPS


def accelerator_hours(flops: float, peak_flops: float, mfu: float) -> float:
    """Device-hours to execute `flops` on devices of `peak_flops` FLOP/s running at `mfu`."""
    if peak_flops <= 0 or not 0 < mfu <= 1:
        from lab.errors import ConfigError

        raise ConfigError(
            f"accelerator_hours needs peak_flops > 0 and mfu in (0, 1], got {peak_flops}, {mfu}"
        )
    return flops / (peak_flops * mfu) / 3600.0


def flops_from_accelerator_hours(hours: float, peak_flops: float, mfu: float) -> float:
    """Inverse of `accelerator_hours`: the FLOPs that many device-hours deliver."""
    return hours * 3600.0 * peak_flops * mfu
