"""Catch columns in the wrong units before they reach a fit: C against 6ND, tokens per parameter.

A CSV with N in millions or D in billions fits without complaint and gives nonsense. Two
checks find it: a given C that is 6ND times a steady power of ten, and (without C) a
tokens-per-parameter ratio no language model has. The error names `--n-scale`/`--d-scale`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.conventions import Conventions
from analysis.errors import AnalysisError

C_TOLERANCE = 0.01  # relative disagreement between a given C and 6ND worth a warning
TPP_PLAUSIBLE = (1e-3, 1e6)  # D/N of any language model trained so far lies well inside
UNIT_STEPS = (1e3, 1e6, 1e9, 1e12)  # thousands, millions, billions, trillions


def _e(x: float) -> str:
    """1e6, not 1e+06: the form a reader types back as --n-scale 1e6."""
    return f"{x:.0e}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def _power_of_1000(x: float) -> float:
    return float(10 ** (3 * round(np.log10(x) / 3)))


def _scale_hint(N: pd.Series, D: pd.Series, factor: float) -> str:
    """Which of --n-scale/--d-scale (or both) explains a 6ND that is `factor` too small.

    The split is the one that puts the median tokens per parameter near 20: with N scaled by
    n and D by d = factor / n, D d / (N n) = 20 gives n = sqrt(factor * median(D/N) / 20).
    """
    n = _power_of_1000(np.sqrt(factor * float((D / N).median()) / 20.0))
    d = factor / n
    scale = [f"--n-scale {_e(n)}"] * (n > 1) + [f"--d-scale {_e(d)}"] * (d > 1)
    if n < 1 or d < 1 or not scale or (d > 1 and not np.isclose(d, _power_of_1000(d))):
        return (
            "N, D or C is in scaled units (millions, billions); pass --n-scale/--d-scale, "
            "or convert the C column to FLOPs"
        )
    return f"is N or D in millions or billions? pass {' '.join(scale)}"


def check_scaled_units(out: pd.DataFrame, given_c: bool, given_d: bool) -> None:
    """Raise when N, D (or C) are plainly not counts of parameters, tokens and FLOPs."""
    ok = (out[["N", "D"]] > 0).all(axis=1) & np.isfinite(out[["N", "D"]]).all(axis=1)
    if given_c and given_d:
        ok &= np.isfinite(out["C"]) & (out["C"] > 0)
    if not ok.any():
        return
    N, D = out.loc[ok, "N"], out.loc[ok, "D"]
    if given_c and given_d:
        log_ratio = np.log10(out.loc[ok, "C"] / (6.0 * N * D))
        mid = float(log_ratio.median())
        spread = float(log_ratio.quantile(0.9) - log_ratio.quantile(0.1))
        if abs(mid) >= 2 and spread < 0.5:
            factor = float(10 ** round(mid))
            raise AnalysisError(
                f"the C column is {_e(factor)} x 6ND in every row, so the units disagree; "
                + (
                    _scale_hint(N, D, factor)
                    if factor > 1
                    else "is C in other units? convert it to FLOPs"
                )
            )
    tpp = float((D / N).median())
    lo, hi = TPP_PLAUSIBLE
    if tpp > hi:
        n = _power_of_1000(np.sqrt(tpp / 20.0)) if not given_d else _power_of_1000(tpp / 20.0)
        raise AnalysisError(
            f"median tokens per parameter D/N = {tpp:.3g} is implausible: is N in millions or "
            f"billions? pass --n-scale {_e(n)} (or the matching factor)"
        )
    if tpp < lo and given_d:
        d = _power_of_1000(20.0 / tpp)
        raise AnalysisError(
            f"median tokens per parameter D/N = {tpp:.3g} is implausible: is D in millions or "
            f"billions? pass --d-scale {_e(d)} (or the matching factor)"
        )


def check_c_is_6nd(out: pd.DataFrame, c_col: str, conv: Conventions, warnings: list[str]) -> None:
    """Keep a given C that agrees with 6ND (rounding); where it disagrees, the convention wins.

    Outputs say "C = 6 N D" under this convention, so a C column that is something else (a
    detailed count, another parameter count) is replaced by 6ND, loudly.
    """
    six_nd = 6.0 * out["N"] * out["D"]
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = ((out["C"] - six_nd) / six_nd).abs()
    off = rel > C_TOLERANCE
    missing = out["C"].isna()
    out.loc[missing, "C"] = six_nd[missing]
    if off.any():
        out.loc[off, "C"] = six_nd[off]
        warnings.append(
            f"C column {c_col!r} differs from 6ND ({conv.params} parameters) by more than "
            f"{100 * C_TOLERANCE:.0f}% in {int(off.sum())} of {len(out)} rows (up to "
            f"{100 * float(rel.max()):.3g}%); used C = 6ND there, as --flops 6ND says, and the "
            f"given C elsewhere. If the column is a detailed FLOP count, pass --flops detailed "
            f"--c {c_col!r}"
        )
