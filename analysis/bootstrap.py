"""Bootstrap helpers: resample runs as integer weight vectors, percentile intervals.

Resampling rows with replacement and fitting a sum over rows is the same as fitting with
integer weights (how often each row was drawn), which lets every resample be solved at once.
"""

from __future__ import annotations

import numpy as np

DEFAULT_LEVEL = 0.95


def resample_weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot x n) counts of rows drawn with replacement, reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    idx_RxN = rng.integers(0, n, size=(n_boot, n))
    w_RxN = np.zeros((n_boot, n))
    np.add.at(w_RxN, (np.arange(n_boot)[:, None], idx_RxN), 1.0)
    return w_RxN


def grouped_resample_weights(groups: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot x n) counts resampling rows within each group (e.g. within each budget)."""
    rng = np.random.default_rng(seed)
    groups = np.asarray(groups)
    w_RxN = np.zeros((n_boot, len(groups)))
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        idx = members[rng.integers(0, len(members), size=(n_boot, len(members)))]
        np.add.at(w_RxN, (np.arange(n_boot)[:, None], idx), 1.0)
    return w_RxN


def invalid_fraction(samples: np.ndarray) -> float:
    """Share of samples that are not finite (failed or undefined resample fits)."""
    s = np.asarray(samples, dtype=float)
    return float(np.mean(~np.isfinite(s))) if s.size else 1.0


def percentile_ci(
    samples: np.ndarray, level: float = DEFAULT_LEVEL, max_invalid: float | None = None
) -> tuple[float, float]:
    """Percentile interval of the finite samples; (nan, nan) when there are too few of them.

    Invalid (non-finite) resamples are not silently dropped: if more than `max_invalid` of
    them are invalid (default (1 - level) / 2, what one tail of the interval holds, since they
    could all belong on one side) the interval is not determined by the data and is nan.
    """
    s = np.asarray(samples, dtype=float)
    limit = (1 - level) / 2 if max_invalid is None else max_invalid
    if s.size == 0 or invalid_fraction(s) > limit:
        return (float("nan"), float("nan"))
    s = s[np.isfinite(s)]
    lo, hi = np.percentile(s, [50 * (1 - level), 50 * (1 + level)])
    return (float(lo), float(hi))


def ci_dict(samples: dict[str, np.ndarray], level: float = DEFAULT_LEVEL) -> dict[str, list[float]]:
    """Percentile CIs of each named sample array: the one place fits turn draws into `ci`."""
    return {k: list(percentile_ci(v, level)) for k, v in samples.items()}
