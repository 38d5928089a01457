"""The compute-optimal allocation laws N_opt = k_N C^a and D_opt = k_D C^b, with their bootstrap.

Approaches 1 and 2 both end in this pair of power laws; they differ only in where the
frontier points come from (training-curve envelopes or IsoFLOP minima).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analysis.bootstrap import DEFAULT_LEVEL, percentile_ci


@dataclass(kw_only=True)
class AllocationLaw:
    """N_opt(C), D_opt(C) as power laws; `samples` holds the bootstrap draws of each parameter."""

    a: float
    b: float
    log_kN: float
    log_kD: float
    ci: dict[str, list[float]] = field(default_factory=dict)
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    diagnostics: dict[str, object] = field(default_factory=dict)
    level: float = DEFAULT_LEVEL

    def n_opt(self, C: float | np.ndarray) -> np.ndarray:
        return np.exp(self.log_kN) * np.asarray(C, dtype=float) ** self.a

    def d_opt(self, C: float | np.ndarray) -> np.ndarray:
        return np.exp(self.log_kD) * np.asarray(C, dtype=float) ** self.b

    def tokens_per_param(self, C: float) -> dict[str, float | list[float]]:
        out: dict[str, float | list[float]] = {
            "C": float(C),
            "value": float(self.d_opt(C) / self.n_opt(C)),
        }
        if self.samples:
            s = self.samples
            with np.errstate(over="ignore", invalid="ignore"):  # overflow -> inf: counted invalid
                ratio = np.exp(s["log_kD"] - s["log_kN"]) * float(C) ** (s["b"] - s["a"])
            out["ci"] = list(percentile_ci(ratio, self.level))
        return out
