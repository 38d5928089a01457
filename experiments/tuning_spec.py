"""The `[tuning]` table of a sweep file: a per-size learning-rate sweep before the main runs.

    [tuning]
    lr_min = 1e-3           # a log grid: lr_points values from lr_min to lr_max ...
    lr_max = 1.6e-2
    lr_points = 5
    # lr_values = [1e-3, 2e-3, 4e-3]   # ... or explicit values
    steps = 300             # length of each tuning run (or budget_flops = 1e11 per run)
    sizes = "all"           # every ladder size, or a list of d_model widths of the ladder
    seeds = [0]

No JAX here; every mistake is a `TuningSpecError` naming the key and the fix.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from lab.errors import ConfigError

TUNING_KEYS = ("lr_values", "lr_min", "lr_max", "lr_points", "steps", "budget_flops", "sizes")
TUNING_KEYS += ("seeds",)


class TuningSpecError(ConfigError):
    """The [tuning] table is invalid; the message names the key and the fix."""


@dataclasses.dataclass(frozen=True)
class TuningSpec:
    lrs: tuple[float, ...]
    steps: int | None  # exactly one of steps / budget_flops
    budget_flops: float | None
    sizes: tuple[int, ...] | None  # d_model widths; None = every size of the ladder
    seeds: tuple[int, ...] = (0,)

    def steps_for(self, flops_per_token: float, tokens_per_step: int) -> int:
        """Steps of one tuning run: `steps`, or the per-run budget divided out."""
        if self.steps is not None:
            return self.steps
        assert self.budget_flops is not None
        return max(1, round(self.budget_flops / flops_per_token / tokens_per_step))


def parse_tuning(table: Any) -> TuningSpec:
    """Validate a parsed `[tuning]` table."""
    if not isinstance(table, Mapping):
        raise TuningSpecError(f"[tuning] must be a table, got {type(table).__name__}")
    bad = sorted(set(table) - set(TUNING_KEYS))
    if bad:
        raise TuningSpecError(
            f"unknown [tuning] key(s) {bad}; valid keys: {', '.join(TUNING_KEYS)}"
        )
    return TuningSpec(
        lrs=_lrs(table),
        steps=_steps(table),
        budget_flops=float(table["budget_flops"]) if "budget_flops" in table else None,
        sizes=_sizes(table.get("sizes", "all")),
        seeds=_seeds(table.get("seeds", [0])),
    )


def _positive(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and value > 0
    )


def _lrs(table: Mapping[str, Any]) -> tuple[float, ...]:
    has_values = "lr_values" in table
    has_range = "lr_min" in table or "lr_max" in table
    if has_values == has_range:
        raise TuningSpecError(
            "[tuning] needs either lr_values = [1e-3, 2e-3, ...] or lr_min/lr_max (+ lr_points)"
        )
    if has_values:
        values = table["lr_values"]
        if not isinstance(values, list) or len(values) < 3 or not all(map(_positive, values)):
            raise TuningSpecError(
                f"[tuning] lr_values must list >= 3 positive LRs (a parabola needs 3), got {values!r}"
            )
        if len(set(values)) != len(values):
            raise TuningSpecError(f"[tuning] lr_values repeats a value: {values}")
        return tuple(sorted(float(v) for v in values))
    low, high, count = table.get("lr_min"), table.get("lr_max"), table.get("lr_points", 5)
    if not (_positive(low) and _positive(high)) or low >= high:
        raise TuningSpecError(f"[tuning] needs 0 < lr_min < lr_max, got {low!r}, {high!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 3:
        raise TuningSpecError(f"[tuning] lr_points must be an integer >= 3, got {count!r}")
    ratio = (high / low) ** (1.0 / (count - 1))
    return tuple(float(f"{low * ratio**i:.6g}") for i in range(count))


def _steps(table: Mapping[str, Any]) -> int | None:
    if ("steps" in table) == ("budget_flops" in table):
        raise TuningSpecError(
            "[tuning] needs exactly one of steps = 300 (per tuning run) or budget_flops = 1e11"
        )
    if "budget_flops" in table:
        if not _positive(table["budget_flops"]):
            raise TuningSpecError(
                f"[tuning] budget_flops must be > 0, got {table['budget_flops']!r}"
            )
        return None
    steps = table["steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise TuningSpecError(f"[tuning] steps must be a positive integer, got {steps!r}")
    return steps


def _sizes(value: Any) -> tuple[int, ...] | None:
    if value == "all":
        return None
    if (
        not isinstance(value, list)
        or not value
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value)
    ):
        raise TuningSpecError(
            f'[tuning] sizes must be "all" or a list of d_model widths of the ladder, got {value!r}'
        )
    return tuple(sorted(set(value)))


def _seeds(value: Any) -> tuple[int, ...]:
    if (
        not isinstance(value, list)
        or not value
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value)
        or len(set(value)) != len(value)
    ):
        raise TuningSpecError(
            f"[tuning] seeds must be distinct non-negative integers, got {value!r}"
        )
    return tuple(value)
