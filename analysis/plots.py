"""The report's figures (matplotlib, PNG and SVG). Figures are built with `Figure` directly,
not pyplot, so no GUI backend is ever touched (Agg renders them) and nothing global changes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from analysis.approach2 import budget_groups
from analysis.approach3 import compute_optimal
from analysis.pipeline import Analysis
from analysis.reference import TOKENS_PER_PARAM_RULE, get_reference, reference_optimal

REFERENCE_LINES = (
    ("hoffmann2022_approach3", "tab:red", "--"),
    ("besiroglu2024", "tab:purple", "-."),
    ("chinchilla_rule", "black", ":"),
)


def save(
    fig: Figure, out_dir: Path, name: str, formats: tuple[str, ...] = ("png", "svg")
) -> list[Path]:
    """Write NAME.png (first: the reports embed it) and NAME.svg; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.{fmt}" for fmt in formats]
    for path in paths:
        fig.savefig(path, bbox_inches="tight", **({"dpi": 120} if path.suffix == ".png" else {}))
    return paths


def _c_grid(an: Analysis, pad: float = 0.3) -> np.ndarray:
    c = an.dataset.points["C"]
    return np.logspace(np.log10(c.min()) - pad, np.log10(max(c.max(), *an.at)) + pad, 100)


LOSS_LABEL = "final loss (nats/token)"
# Model sizes: viridis without its pale-yellow top, which vanishes on white.
SIZE_COLOURS = ListedColormap(colormaps["viridis"](np.linspace(0.0, 0.85, 256)))
MAX_BUDGET_TICKS = 12


def budget_colours(budgets: np.ndarray) -> tuple[ListedColormap, BoundaryNorm, dict]:
    """One colour per distinct budget (dark purple to orange: no pale yellow on white)."""
    uniq = np.unique(budgets)
    colours = colormaps["plasma"](np.linspace(0.0, 0.82, uniq.size))
    cmap = ListedColormap(colours)
    norm = BoundaryNorm(np.arange(uniq.size + 1) - 0.5, uniq.size)
    return cmap, norm, {float(C): colours[i] for i, C in enumerate(uniq)}


def budget_colorbar(fig: Figure, axes, budgets: np.ndarray, cmap, norm) -> None:
    """A discrete colour bar: one band per budget, labelled with its C (thinned when many)."""
    from matplotlib.cm import ScalarMappable

    uniq = np.unique(budgets)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, label="budget C (FLOPs)")
    step = max(1, int(np.ceil(uniq.size / MAX_BUDGET_TICKS)))
    ticks = np.arange(0, uniq.size, step)
    bar.set_ticks(ticks, labels=[f"{uniq[i]:.2g}" for i in ticks])
    bar.ax.tick_params(labelsize=8)


def plain_log_ticks(axis) -> None:
    """Log-axis ticks written as numbers (20, 50, 100), not 2x10^1, at 1-2-5 steps."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    axis.set_minor_formatter(NullFormatter())


def loss_vs_compute(an: Analysis) -> Figure:
    """Training curves (coloured by N), final losses, and the fitted frontier L(C)."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    pts = an.dataset.points
    if an.dataset.has_sizes:
        norm, cmap = LogNorm(pts["N"].min(), pts["N"].max()), SIZE_COLOURS
        if an.dataset.curves is not None:
            for _, g in an.dataset.curves.groupby("run_id"):
                ax.plot(g["C"], g["loss"], color=cmap(norm(g["N"].iloc[0])), lw=0.6, alpha=0.5)
        sc = ax.scatter(pts["C"], pts["loss"], c=pts["N"], norm=norm, cmap=cmap, s=14, zorder=3)
        fig.colorbar(sc, ax=ax, label="N (parameters)")
    else:  # C and loss only: no size to colour by
        ax.scatter(pts["C"], pts["loss"], color="tab:blue", s=14, zorder=3, label="runs")
    if an.frontier is not None:
        grid = np.logspace(np.log10(pts["C"].min()), np.log10(pts["C"].max()) + 0.5, 100)
        fr = an.frontier
        ax.plot(
            fr.points["budget"],
            fr.points["loss"],
            "k*",
            ms=9,
            label="best loss per budget",
            zorder=4,
        )
        ax.plot(grid, fr.plain(grid), "k:", label=f"L = k C^{fr.plain_exponent:.3f}")
        if fr.saturating is not None:
            s = fr.saturating
            ax.plot(
                grid, s(grid), "k-", lw=1.5, label=f"L = {s.E:.2f} + ({s.C0:.2g}/C)^{s.gamma:.3f}"
            )
    ax.set(
        xscale="log",
        xlabel=f"C (FLOPs, {an.dataset.conventions.flops})",
        ylabel=LOSS_LABEL,
    )
    ax.set_title("Loss vs compute")
    ax.legend(fontsize=8)
    return fig


def isoflop(an: Analysis) -> Figure:
    """Loss against N at each budget, the fitted parabolas and their minima (hollow: at edge)."""
    fig = Figure(figsize=(8, 4.8))
    ax = fig.add_subplot()
    pts = an.dataset.points
    budgets = budget_groups(pts)
    cmap, norm, colour = budget_colours(budgets)
    for C_b in np.unique(budgets):
        g = pts.loc[budgets == C_b]
        ax.scatter(g["N"], g["loss"], color=colour[float(C_b)], s=14)
    if an.approach2 is not None:
        for r in an.approach2.budgets.itertuples():
            x = np.linspace(np.log(r.N_min_sampled), np.log(r.N_max_sampled), 60)
            c0, c1, c2 = r.coef_logN
            color = colour.get(float(r.budget), "grey")
            ax.plot(np.exp(x), c0 + c1 * x + c2 * x**2, color=color, lw=1)
            if np.isfinite(r.N_opt):
                ax.plot(
                    r.N_opt,
                    r.loss_opt,
                    "o",
                    color=color,
                    mfc="none" if r.edge else color,
                    ms=8,
                    mec="k",
                )
    ax.set(
        xscale="log",
        xlabel=f"N ({an.dataset.conventions.params} parameters)",
        ylabel=LOSS_LABEL,
    )
    ax.set_title("IsoFLOP profiles: loss against model size at fixed compute")
    marks = [
        Line2D([], [], ls="", marker="o", color="grey", mec="k", ms=8, label="minimum, in the fit"),
        Line2D([], [], ls="", marker="o", mfc="none", mec="k", ms=8, label="minimum at the edge"),
    ]
    ax.legend(handles=marks, fontsize=8, loc="lower left", framealpha=0.9)
    budget_colorbar(fig, ax, budgets, cmap, norm)
    return fig


def _band(an: Analysis, grid: np.ndarray) -> tuple | None:
    a3 = an.approach3
    if a3 is None or a3.samples is None:
        return None
    s = a3.samples[:1000]
    n, d = compute_optimal(s[:, None, :], grid[None, :])
    return tuple(np.percentile(v, [2.5, 97.5], axis=0) for v in (n, d))


def optimal_allocation(an: Analysis) -> Figure:
    """N_opt(C) and D_opt(C): the lab's fits with a 95% band, and Chinchilla's lines."""
    fig = Figure(figsize=(11, 4.5))
    axes = fig.subplots(1, 2)
    grid = _c_grid(an)
    band = _band(an, grid)
    for k, (ax, what) in enumerate(zip(axes, ("N", "D"), strict=True)):
        if an.approach3 is not None:
            ax.plot(grid, an.approach3.optimal(grid)[k], "tab:blue", label="lab: Approach 3")
            if band is not None:
                ax.fill_between(
                    grid, *band[k], color="tab:blue", alpha=0.2, label="Approach 3, 95% bootstrap"
                )
        if an.approach2 is not None:
            f = an.approach2
            ax.plot(
                grid,
                (f.n_opt if k == 0 else f.d_opt)(grid),
                "tab:green",
                label=f"lab: Approach 2 (a={f.a:.3f}, b={f.b:.3f})",
            )
            clean = f.budgets.loc[f.budgets["in_frontier"]]
            ax.plot(
                clean["C_opt"],
                clean[f"{what}_opt"],
                "o",
                color="tab:green",
                label="IsoFLOP minima",
            )
        if an.approach1 is not None:
            f1 = an.approach1
            ax.plot(
                grid,
                (f1.n_opt if k == 0 else f1.d_opt)(grid),
                "tab:orange",
                label=f"lab: Approach 1 (a={f1.a:.3f})",
            )
        for key, color, ls in REFERENCE_LINES:
            ax.plot(
                grid,
                reference_optimal(key, grid)[k],
                color=color,
                ls=ls,
                lw=1,
                label=get_reference(key)["label"],
            )
        unit = "parameters" if k == 0 else "tokens"
        ax.set(xscale="log", yscale="log", xlabel="C (FLOPs)", ylabel=f"{what}_opt ({unit})")
        ax.set_title(f"Compute-optimal {'model size' if k == 0 else 'tokens'}")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncols=3, fontsize=8, frameon=False)
    fig.subplots_adjust(bottom=0.27, wspace=0.25)
    return fig


def tokens_per_param(an: Analysis) -> Figure:
    """D_opt / N_opt against C, with 20 tokens per parameter marked."""
    fig = Figure(figsize=(9.5, 4.5))
    ax = fig.add_subplot()
    grid = _c_grid(an)
    band = _band(an, grid)
    if an.approach3 is not None:
        n, d = an.approach3.optimal(grid)
        ax.plot(grid, d / n, "tab:blue", label="lab: Approach 3")
        if band is not None and an.approach3.samples is not None:
            s = an.approach3.samples[:1000]
            ns, ds = compute_optimal(s[:, None, :], grid[None, :])
            lo, hi = np.percentile(ds / ns, [2.5, 97.5], axis=0)
            ax.fill_between(grid, lo, hi, color="tab:blue", alpha=0.2, label="95% bootstrap")
    if an.approach2 is not None:
        f = an.approach2
        ax.plot(grid, f.d_opt(grid) / f.n_opt(grid), "tab:green", label="lab: Approach 2")
        b = f.budgets
        for edge, style in ((False, {}), (True, {"mfc": "none"})):
            m = b["edge"] == edge
            if not m.any():
                continue
            ax.plot(
                b.loc[m, "C_opt"],
                b.loc[m, "D_opt"] / b.loc[m, "N_opt"],
                "o",
                color="tab:green",
                zorder=3,
                label="IsoFLOP minima" + (" at the edge (not fitted)" if edge else ""),
                **style,
            )
    for key, color, ls in REFERENCE_LINES[:2]:
        n, d = reference_optimal(key, grid)
        ax.plot(grid, d / n, color=color, ls=ls, lw=1, label=get_reference(key)["label"])
    ax.axhline(TOKENS_PER_PARAM_RULE, color="k", ls=":", label="20 tokens / parameter")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="C (FLOPs)",
        ylabel="D_opt / N_opt (tokens per parameter)",
    )
    plain_log_ticks(ax.yaxis)
    ax.set_title("Tokens per parameter at the compute-optimal allocation")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return fig


def residuals(an: Analysis) -> Figure:
    """Approach-3 log residuals against N and D (coloured by budget); Huber's delta shaded."""
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2, sharey=True)
    pts = an.dataset.points
    if an.approach3 is not None:
        r = np.log(an.approach3.predict(pts["N"], pts["D"])) - np.log(pts["loss"])
        delta = an.approach3.diagnostics.get("huber_delta", 1e-3)
        budgets = budget_groups(pts)
        cmap, norm, colour = budget_colours(budgets)
        colours = [colour[float(C)] for C in budgets]
        labels = (f"N ({an.dataset.conventions.params} parameters)", "D (training tokens)")
        for ax, col, label in zip(axes, ("N", "D"), labels, strict=True):
            ax.scatter(pts[col], r, c=colours, s=12)
            ax.axhspan(-delta, delta, color="grey", alpha=0.3)
            ax.axhline(0, color="k", lw=0.8)
            ax.set(xscale="log", xlabel=label)
        budget_colorbar(fig, list(axes), budgets, cmap, norm)
    axes[0].set_ylabel("log predicted - log observed loss")
    fig.suptitle("Approach 3 residuals (grey band: Huber delta)")
    return fig


FIGURES = {
    "loss_vs_compute": loss_vs_compute,
    "isoflop": isoflop,
    "optimal_allocation": optimal_allocation,
    "tokens_per_param": tokens_per_param,
    "residuals": residuals,
}


def save_all(
    an: Analysis, out_dir: Path, formats: tuple[str, ...] = ("png", "svg")
) -> dict[str, list[Path]]:
    """Every figure the data allow, as PNG and SVG; returns name -> paths."""
    out = {}
    for name, make in FIGURES.items():
        if name == "isoflop" and an.approach2 is None:
            continue
        if name == "residuals" and an.approach3 is None:
            continue
        if name in ("optimal_allocation", "tokens_per_param") and not an.dataset.has_sizes:
            continue  # frontier-only data: no allocation was fitted
        out[name] = save(make(an), out_dir, name, formats)
    return out
