"""Published reference fits, read from analysis/data/reference_fits.json (with citations)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import numpy as np

from analysis.errors import AnalysisError
from analysis.surface import compute_optimal

TOKENS_PER_PARAM_RULE = 20.0
ALIASES = {
    "hoffmann": "hoffmann2022_approach3",
    "hoffmann-a1": "hoffmann2022_approach1",
    "hoffmann-a2": "hoffmann2022_approach2",
    "muennighoff": "muennighoff2023",
    "besiroglu": "besiroglu2024",
    "kaplan": "kaplan2020",
}


@cache
def reference_fits() -> dict[str, dict]:
    """Every published fit by key (comment entries dropped)."""
    text = resources.files("analysis").joinpath("data", "reference_fits.json").read_text()
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def get_reference(name: str) -> dict:
    """A fit by key or short alias (hoffmann, hoffmann-a1, hoffmann-a2, besiroglu, muennighoff,
    kaplan)."""
    key = ALIASES.get(name, name)
    fits = reference_fits()
    if key not in fits:
        raise AnalysisError(
            f"unknown reference fit {name!r}; choose one of {sorted(ALIASES) + sorted(fits)}"
        )
    return fits[key]


def parametric_array(ref: dict) -> np.ndarray:
    """(E, A, B, alpha, beta) of a parametric (or data-constrained) reference."""
    if ref.get("kind") not in ("parametric", "data_constrained"):
        raise AnalysisError(f"{ref.get('label')} is not a parametric L(N, D) fit")
    return np.array([ref[k] for k in ("E", "A", "B", "alpha", "beta")], dtype=float)


def reference_optimal(name: str, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """N_opt(C), D_opt(C) under a published fit (parametric, frontier, or the 20x rule)."""
    ref = get_reference(name)
    C = np.asarray(C, dtype=float)
    if ref["kind"] in ("parametric", "data_constrained"):
        return compute_optimal(parametric_array(ref), C)
    if ref["kind"] == "frontier":
        anchor = ref["anchor"]
        N = anchor["N"] * (C / anchor["C"]) ** ref["a"]
        D_anchor = anchor["C"] / (6 * anchor["N"])
        return N, D_anchor * (C / anchor["C"]) ** ref["b"]
    if ref["kind"] == "rule":
        N = np.sqrt(C / (6 * ref["tokens_per_param"]))
        return N, ref["tokens_per_param"] * N
    raise AnalysisError(f"{ref['label']} gives no compute-optimal allocation")
