"""How report tables write numbers: one place, so every section reads alike."""

from __future__ import annotations

import numpy as np

Table = tuple[str, list[str], list[list[str]]]  # (title, header, rows)


def fmt(x: float | None, digits: int = 4) -> str:
    """`digits` significant digits; '-' for a missing or non-finite value."""
    return "-" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def has_ci(ci: list | None) -> bool:
    """An interval with two finite ends (nan or None ends: not determined by the data)."""
    return bool(ci) and all(x is not None and np.isfinite(x) for x in ci)


def ci_text(ci: list[float] | None, digits: int = 4) -> str:
    return "-" if not has_ci(ci) else f"[{fmt(ci[0], digits)}, {fmt(ci[1], digits)}]"


def with_ci(value: float, ci: list[float] | None, digits: int = 3) -> str:
    """'value [lo, hi]', or the value alone when the interval is not determined."""
    return f"{fmt(value, digits)} {ci_text(ci, digits)}" if has_ci(ci) else fmt(value, digits)
