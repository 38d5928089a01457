"""Parameter and FLOP conventions: explicit inputs that travel with every fit and output.

Chinchilla counts total parameters, Kaplan non-embedding ones; C = 6ND is the usual cost,
`detailed` adds attention. Exponents differ between conventions, so every result says
which one it used.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.errors import AnalysisError

PARAM_CONVENTIONS = ("total", "nonemb")
FLOP_CONVENTIONS = ("6ND", "detailed")


@dataclass(frozen=True)
class Conventions:
    """Which parameter count is N and which FLOP count is C."""

    params: str = "total"
    flops: str = "6ND"

    def __post_init__(self) -> None:
        if self.params not in PARAM_CONVENTIONS:
            raise AnalysisError(
                f"unknown parameter convention {self.params!r}; use one of {PARAM_CONVENTIONS}"
            )
        if self.flops not in FLOP_CONVENTIONS:
            raise AnalysisError(
                f"unknown FLOP convention {self.flops!r}; use one of {FLOP_CONVENTIONS}"
            )

    def describe(self) -> str:
        """One line for reports: what N and C mean here."""
        n = "total parameters" if self.params == "total" else "non-embedding parameters"
        c = "C = 6 N D" if self.flops == "6ND" else "detailed FLOP count (incl. attention)"
        return f"N = {n}; {c}"

    def as_dict(self) -> dict[str, str]:
        return {"params": self.params, "flops": self.flops}


DEFAULT_CONVENTIONS = Conventions()
