"""How report tables write numbers: one place, so every section reads alike.

An interval is rounded to what its width resolves: both ends (and the value beside them) get
the same decimals, enough to show the width to two significant digits. So an Approach 1
interval is `[0.00, 0.47]`, not `[-2.479e-30, 0.4739]`, and 20 tokens per parameter reads
`19 [8, 30]`.
"""

from __future__ import annotations

import math

import numpy as np

Table = tuple[str, list[str], list[list[str]]]  # (title, header, rows)

FIXED_RANGE = (1e-3, 1e5)  # magnitudes written as plain decimals; outside, scientific
MAX_DECIMALS = 6


def fmt(x: float | None, digits: int = 4) -> str:
    """`digits` significant digits; '-' for a missing or non-finite value."""
    return "-" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def has_ci(ci: list | None) -> bool:
    """An interval with two finite ends (nan or None ends: not determined by the data)."""
    return bool(ci) and all(x is not None and np.isfinite(x) for x in ci)


def _formatter(lo: float, hi: float, digits: int, value: float | None = None):
    """A number format for the values of one interval, resolving its width to `digits`;
    with `value`, also enough decimals to give the value itself `digits` digits."""
    big = max(abs(lo), abs(hi))
    width = hi - lo
    if big == 0 or width <= 0 or not math.isfinite(width):
        return lambda x: fmt(x, digits + 1)
    w_exp = math.floor(math.log10(width))
    if FIXED_RANGE[0] <= big < FIXED_RANGE[1]:
        decimals = max(digits - 1 - w_exp, 0)
        if value:
            decimals = max(decimals, digits - 1 - math.floor(math.log10(abs(value))))
        decimals = min(decimals, MAX_DECIMALS)

        def fixed(x: float) -> str:
            text = f"{x:.{decimals}f}"
            return text[1:] if text.startswith("-") and float(text) == 0 else text  # no -0.00

        return fixed
    sig = max(digits, math.floor(math.log10(big)) - w_exp + digits)
    return lambda x: f"{x:#.{sig}g}"


def ci_text(ci: list[float] | None, digits: int = 2) -> str:
    """'[lo, hi]' rounded to what the interval's width resolves; '-' when not determined."""
    if not has_ci(ci):
        return "-"
    f = _formatter(float(ci[0]), float(ci[1]), digits)  # type: ignore[index]
    return f"[{f(float(ci[0]))}, {f(float(ci[1]))}]"  # type: ignore[index]


def with_ci(value: float, ci: list[float] | None, digits: int = 2) -> str:
    """'value [lo, hi]' with the value rounded like its interval; the value alone (3
    significant digits) when the interval is not determined."""
    if not has_ci(ci) or value is None or not np.isfinite(value):
        return fmt(value, 3)
    f = _formatter(float(ci[0]), float(ci[1]), digits, value)  # type: ignore[index]
    return f"{f(value)} {ci_text(ci, digits)}"
