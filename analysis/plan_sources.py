"""Where the planner's answers come from: a `fit --json` file (Approach 3 or 2) or a
published fit (Hoffmann et al.'s Approaches 1-3, Besiroglu et al.'s refit, Muennighoff
et al.'s data-constrained law).

A source is either a surface L(N, D) (it answers every question, loss included) or an
allocation law N_opt = k_N C^a, D_opt = k_D C^b (Approaches 1 and 2: N and D, no loss).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.conventions import Conventions
from analysis.errors import AnalysisError
from analysis.reference import get_reference, parametric_array
from analysis.surface import FLOPS_PER_PARAM_TOKEN_6ND, PARAM_NAMES

KEYS = PARAM_NAMES
PUBLISHED = {
    "besiroglu": "Besiroglu et al. 2024's refit of Chinchilla (default)",
    "hoffmann": "Hoffmann et al. 2022, Approach 3 as published",
    "hoffmann-a1": "Hoffmann et al. 2022, Approach 1 (a = 0.50)",
    "hoffmann-a2": "Hoffmann et al. 2022, Approach 2 (a = 0.49)",
    "muennighoff": "Muennighoff et al. 2023's data-constrained law (C4)",
}


@dataclass(frozen=True)
class PlanSource:
    """What the planner plans with. `params`/`samples`: surface rows (E, A, B, alpha, beta);
    `law`/`law_samples`: a, b, log_kN, log_kD of an allocation law; `decay`: (R_D*, R_N*)
    when the source is a data-constrained fit; `compute_range`: the FLOPs its data span."""

    label: str
    params: np.ndarray | None = None
    samples: np.ndarray | None = None
    law: dict[str, float] | None = None
    law_samples: dict[str, np.ndarray] | None = None
    compute_range: tuple[float, float] | None = None
    flops_per_param_token: float = FLOPS_PER_PARAM_TOKEN_6ND
    decay: np.ndarray | None = None

    @property
    def has_surface(self) -> bool:
        return self.params is not None


def _conventions_text(doc: dict) -> str:
    """The fit's conventions as a reader would say them, e.g. 'N = total parameters; C = 6 N D'."""
    conv = doc.get("conventions")
    try:
        return Conventions(**conv).describe()
    except (TypeError, AnalysisError):
        return f"conventions not recorded ({conv!r})"


def _range(value) -> tuple[float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 2 and all(v for v in value):
        return float(value[0]), float(value[1])
    return None


def _approach3(doc: dict, a3: dict, label: str) -> PlanSource:
    samples = a3.get("bootstrap_samples", {}).get("rows")
    diag = a3.get("diagnostics", {})
    return PlanSource(
        label=label,
        params=np.array([a3[k] for k in KEYS], dtype=float),
        samples=np.array(samples, dtype=float) if samples else None,
        compute_range=_range(diag.get("compute_range")),
        flops_per_param_token=float(diag.get("flops_per_param_token", FLOPS_PER_PARAM_TOKEN_6ND)),
    )


def _approach2(a2: dict, label: str) -> PlanSource:
    """The allocation law of an Approach 2 document: a, b as fitted; the intercepts are the
    least-squares ones through its frontier budgets (the line passes through their means),
    unless the document records log_kN / log_kD itself."""
    rows = [r for r in a2.get("budgets", []) if r.get("in_frontier")]
    if len(rows) < 2 or not isinstance(a2.get("a"), int | float):
        raise AnalysisError("the Approach 2 fit has fewer than 2 frontier budgets to plan from")
    lc = np.log([r["budget"] for r in rows])
    a, b = float(a2["a"]), float(a2["b"])
    law = {
        "a": a,
        "b": b,
        "log_kN": float(
            a2.get("log_kN", np.mean(np.log([r["N_opt"] for r in rows])) - a * lc.mean())
        ),
        "log_kD": float(
            a2.get("log_kD", np.mean(np.log([r["D_opt"] for r in rows])) - b * lc.mean())
        ),
    }
    budgets = [r["budget"] for r in a2.get("budgets", [])]
    return PlanSource(label=label, law=law, compute_range=(min(budgets), max(budgets)))


def from_fit_file(path: Path, approach: str | None = None) -> PlanSource:
    """Approach 3 (default when present) or Approach 2 of a `fit --json` document."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise AnalysisError(f"cannot read fit file {path}: {e}") from e
    if not isinstance(doc, dict):
        raise AnalysisError(f"{path} is not a `fit --json` document (not a JSON object)")
    label = f"lab fit from {path} ({doc.get('source', '?')}; {_conventions_text(doc)})"
    a3 = doc.get("approach3", doc if "approach" not in doc and "alpha" in doc else None)
    has3 = isinstance(a3, dict) and all(isinstance(a3.get(k), int | float) for k in KEYS)
    has2 = isinstance(doc.get("approach2"), dict)
    if approach in (None, "3") and has3:
        return _approach3(doc, a3, label)
    if approach in (None, "2") and has2:
        return _approach2(doc["approach2"], f"{label}, Approach 2 (allocation only: no loss)")
    want = "no Approach 3 or Approach 2 fit" if approach is None else f"no Approach {approach} fit"
    raise AnalysisError(
        f"{path} has {want}; write one with "
        f"`scaling-lab fit SOURCE --approach {approach or 3} --json -o FILE`"
    )


def published(name: str, n_boot: int = 1000) -> PlanSource:
    """A published fit. Besiroglu et al.'s gets intervals from a bootstrap of its own data."""
    ref = get_reference(name)
    rng = _range(ref.get("compute_range"))
    if ref["kind"] == "frontier":
        anchor = ref["anchor"]
        a, b = float(ref["a"]), float(ref["b"])
        d_anchor = anchor["C"] / (FLOPS_PER_PARAM_TOKEN_6ND * anchor["N"])
        law = {
            "a": a,
            "b": b,
            "log_kN": float(np.log(anchor["N"]) - a * np.log(anchor["C"])),
            "log_kD": float(np.log(d_anchor) - b * np.log(anchor["C"])),
        }
        return PlanSource(f"{ref['label']} (allocation only: no loss)", law=law, compute_range=rng)
    params = parametric_array(ref)
    decay = None
    if ref["kind"] == "data_constrained":
        decay = np.array([ref["R_D_star"], ref["R_N_star"]], dtype=float)
    if name != "besiroglu":
        return PlanSource(ref["label"], params=params, compute_range=rng, decay=decay)
    from analysis.approach3 import fit_approach3
    from analysis.examples import load_example

    pts = load_example("chinchilla").points
    fit = fit_approach3(pts["N"], pts["D"], pts["loss"], n_boot=n_boot, seed=0)
    label = f"{ref['label']} (interval: {n_boot}-resample bootstrap refit of the same data)"
    return PlanSource(label, params=params, samples=fit.samples, compute_range=rng)


def plan_source(use: str | None, fit_file: Path | None, approach: str | None = None) -> PlanSource:
    if fit_file is not None:
        return from_fit_file(fit_file, approach)
    return published(use or "besiroglu")
