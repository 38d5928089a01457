"""Parameter and FLOP conventions: explicit inputs that travel with every fit and output.

Chinchilla counts total parameters, Kaplan non-embedding ones; C = 6ND is the usual cost,
`detailed` adds attention. Exponents differ between conventions, so every result says
which one it used.

FLOP conventions: `6ND` is 6 N D with N the chosen parameter count (Chinchilla's C with
total N, Kaplan's with non-embedding N); `6N` and `6N_nonemb` fix the parameter count inside
C whatever N is (the lab's names, as in a sweep's `flop_convention`), so C and N can be
varied independently (the report's convention-sensitivity section); `detailed` is the
detailed causal count, attention included.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.errors import AnalysisError

PARAM_CONVENTIONS = ("total", "nonemb")
FLOP_CONVENTIONS = ("6ND", "6N", "6N_nonemb", "detailed")


C_DESCRIPTIONS = {
    "6ND": "C = 6 N D",
    "6N": "C = 6 N_total D",
    "6N_nonemb": "C = 6 N_nonemb D",
    "detailed": "detailed FLOP count (incl. attention)",
}


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

    @property
    def c_flops(self) -> str:
        """The FLOP count C is, with `6ND` resolved: `6N`, `6N_nonemb` or `detailed`."""
        if self.flops == "6ND":
            return "6N" if self.params == "total" else "6N_nonemb"
        return self.flops

    @property
    def is_6nd(self) -> bool:
        """True when C = 6 N D with this N (then C and D can be derived from each other)."""
        return self.c_flops == ("6N" if self.params == "total" else "6N_nonemb")

    @property
    def c_key(self) -> str:
        """The canonical column (`analysis.columns.ALIASES`) that holds this C."""
        return {"6N": "C", "6N_nonemb": "C_nonemb", "detailed": "C_detailed"}[self.c_flops]

    def describe(self) -> str:
        """One line for reports: what N and C mean here."""
        n = "total parameters" if self.params == "total" else "non-embedding parameters"
        return f"N = {n}; {C_DESCRIPTIONS[self.flops if self.is_6nd else self.c_flops]}"

    def as_dict(self) -> dict[str, str]:
        return {"params": self.params, "flops": self.flops}


DEFAULT_CONVENTIONS = Conventions()
