"""Where the planner's L(N, D) comes from: a `fit --json` file or a published fit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from analysis.conventions import Conventions
from analysis.errors import AnalysisError
from analysis.reference import get_reference, parametric_array

KEYS = ("E", "A", "B", "alpha", "beta")


def _conventions_text(doc: dict) -> str:
    """The fit's conventions as a reader would say them, e.g. 'N = total parameters; C = 6 N D'."""
    conv = doc.get("conventions")
    try:
        return Conventions(**conv).describe()
    except (TypeError, AnalysisError):
        return f"conventions not recorded ({conv!r})"


def from_fit_file(path: Path) -> tuple[str, np.ndarray, np.ndarray | None]:
    """Approach 3 of a `fit --json` document: parameters and bootstrap samples if present."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise AnalysisError(f"cannot read fit file {path}: {e}") from e
    a3 = doc.get("approach3", doc)
    if not all(isinstance(a3.get(k), int | float) for k in KEYS):
        raise AnalysisError(
            f"{path} has no Approach 3 fit (E, A, B, alpha, beta); write one with "
            "`scaling-lab fit SOURCE --approach 3 --json -o FILE`"
        )
    samples = a3.get("bootstrap_samples", {}).get("rows")
    arr = np.array(samples, dtype=float) if samples else None
    label = f"lab fit from {path} ({doc.get('source', '?')}; {_conventions_text(doc)})"
    return label, np.array([a3[k] for k in KEYS], dtype=float), arr


def published(name: str, n_boot: int = 1000) -> tuple[str, np.ndarray, np.ndarray | None]:
    """A published fit. Besiroglu et al.'s gets intervals from a bootstrap of its own data."""
    ref = get_reference(name)
    params = parametric_array(ref)
    if name != "besiroglu":
        return ref["label"], params, None
    from analysis.approach3 import fit_approach3
    from analysis.examples import load_example

    pts = load_example("chinchilla").points
    fit = fit_approach3(pts["N"], pts["D"], pts["loss"], n_boot=n_boot, seed=0)
    label = f"{ref['label']} (interval: {n_boot}-resample bootstrap refit of the same data)"
    return label, params, fit.samples


def plan_source(
    use: str | None, fit_file: Path | None
) -> tuple[str, np.ndarray, np.ndarray | None]:
    if fit_file is not None:
        return from_fit_file(fit_file)
    return published(use or "besiroglu")
