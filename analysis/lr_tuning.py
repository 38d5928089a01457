"""Learning-rate picking: per-size optimum from a log-LR grid, then a power law LR_opt(N).

Pure numpy (the sweep runner imports it to set the main runs' LR; the report to show it).

Per size, the loss is fitted by a parabola in log LR through the best grid point and its
neighbours (the best 3, or 5 when there are 5+ points and the curve is convex there), so the
optimum can lie between grid points (Porian et al. 2024 tune per size for the same reason).
An optimum at the edge of the grid, or a non-convex neighbourhood, falls back to the best grid
point with a warning: the grid should be widened. Diverged (NaN/inf) points count as worst.
LR_opt(N) = lr_ref * (N / n_ref)^exponent is least squares in log-log space over the sizes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

POLICIES = ("fixed", "lr_rule", "tuned", "mup")


class LrTuningError(ValueError):
    """Too few or invalid points to pick or fit a learning rate."""


@dataclasses.dataclass(frozen=True)
class LrPick:
    """The chosen LR of one size: `lr` (the parabola's vertex or the best grid point)."""

    lr: float
    loss: float
    coeffs: tuple[float, float, float] | None  # loss = c0 x^2 + c1 x + c2, x = ln LR
    fit_range: tuple[float, float]  # LRs of the points the parabola went through
    warning: str | None = None

    @property
    def interpolated(self) -> bool:
        return self.coeffs is not None and self.warning is None


@dataclasses.dataclass(frozen=True)
class LrLaw:
    """LR_opt(N) = lr_ref * (N / n_ref) ** exponent."""

    lr_ref: float
    n_ref: float
    exponent: float

    def __call__(self, n: float | np.ndarray) -> float | np.ndarray:
        return self.lr_ref * (np.asarray(n, dtype=float) / self.n_ref) ** self.exponent

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        return f"LR_opt(N) = {self.lr_ref:.3g} * (N / {self.n_ref:.3g})^{self.exponent:+.3f}"


def pick_lr(lrs: Sequence[float], losses: Sequence[float]) -> LrPick:
    """The optimal LR of one size from (LR, final loss) points; see the module docstring."""
    x_all = np.log(np.asarray(lrs, dtype=float))
    y_all = np.asarray(losses, dtype=float)
    if x_all.shape != y_all.shape or x_all.size == 0:
        raise LrTuningError(f"need as many losses as LRs, got {len(lrs)} LRs, {len(losses)} losses")
    if not np.all(np.isfinite(x_all)):
        raise LrTuningError(f"learning rates must be positive, got {list(lrs)}")
    order = np.argsort(x_all)
    x_all, y_all = x_all[order], y_all[order]
    y_all = np.where(np.isfinite(y_all), y_all, np.inf)  # diverged: worst
    if not np.any(np.isfinite(y_all)):
        raise LrTuningError("every tuning run diverged; lower the LR grid")
    best = int(np.argmin(y_all))
    best_pick = LrPick(
        float(math.exp(x_all[best])),
        float(y_all[best]),
        None,
        (float(math.exp(x_all[best])),) * 2,
    )
    edge = best in (0, x_all.size - 1)
    windows = [(best - h, best + h + 1) for h in (2, 1)]  # 5 points around the best, else 3
    if edge:  # the 3 points at that edge: the vertex may still lie inside the grid
        windows = [(0, 3)] if best == 0 else [(x_all.size - 3, x_all.size)]
    for lo, hi in windows:
        if lo < 0 or hi > x_all.size:
            continue
        x, y = x_all[lo:hi], y_all[lo:hi]
        if not np.all(np.isfinite(y)):
            continue
        c = np.polyfit(x, y, 2)
        if c[0] <= 0:
            continue
        vertex = -c[1] / (2 * c[0])
        if not x[0] <= vertex <= x[-1]:
            continue
        return LrPick(
            float(math.exp(vertex)),
            float(np.polyval(c, vertex)),
            (float(c[0]), float(c[1]), float(c[2])),
            (float(math.exp(x[0])), float(math.exp(x[-1]))),
        )
    if edge:
        side = "lowest" if best == 0 else "highest"
        return dataclasses.replace(
            best_pick,
            warning=f"the best LR {best_pick.lr:.3g} is the {side} of the grid: the optimum may "
            "lie outside it; widen the LR grid on that side",
        )
    return dataclasses.replace(
        best_pick, warning="loss vs log LR is not convex around the best point; used the argmin"
    )


def fit_lr_law(sizes: Sequence[float], lr_opts: Sequence[float]) -> LrLaw:
    """Power law through (N, LR_opt); one size gives exponent 0 (the same LR for all)."""
    n = np.asarray(sizes, dtype=float)
    lr = np.asarray(lr_opts, dtype=float)
    if n.size == 0 or n.shape != lr.shape or np.any(n <= 0) or np.any(lr <= 0):
        raise LrTuningError(f"need positive sizes and LRs of equal length, got {sizes}, {lr_opts}")
    n_ref = float(math.exp(np.mean(np.log(n))))
    if np.unique(n).size == 1:
        return LrLaw(float(math.exp(np.mean(np.log(lr)))), n_ref, 0.0)
    slope, intercept = np.polyfit(np.log(n / n_ref), np.log(lr), 1)
    return LrLaw(float(math.exp(intercept)), n_ref, float(slope))


def picks_by_size(
    sizes: Sequence[float], lrs: Sequence[float], losses: Sequence[float]
) -> dict[float, LrPick]:
    """`pick_lr` per distinct size; repeated (size, LR) points (seeds) are averaged first."""
    table: dict[float, dict[float, list[float]]] = {}
    for n, lr, loss in zip(sizes, lrs, losses, strict=True):
        table.setdefault(float(n), {}).setdefault(float(lr), []).append(float(loss))
    return {
        n: pick_lr(list(by_lr), [float(np.mean(v)) for v in by_lr.values()])
        for n, by_lr in sorted(table.items())
    }


def policy_sentence(policies: Sequence[str], law: dict | None = None) -> str:
    """One sentence naming the hyperparameter policy of the runs behind the frontier."""
    found = sorted({p for p in policies if p})
    if not found:
        return "The runs do not record their learning-rate policy (results before lr_policy)."
    text = {
        "fixed": "one fixed peak learning rate for every size (Kaplan-style; Porian et al. 2024 "
        "show this can bias the compute-optimal exponent)",
        "lr_rule": "a preset size-dependent learning-rate rule",
        "tuned": "a learning rate tuned per size, with LR_opt(N) fitted to the tuning runs",
        "mup": "muP, so one learning rate transfers across widths",
    }
    parts = [text.get(p, p) for p in found]
    sentence = "The frontier was produced with " + "; and ".join(parts)
    if law:
        sentence += f" ({LrLaw(**law).describe()})"
    return sentence + "."
