"""The planner's answers as text for `scaling-lab plan` (the JSON is the same dict)."""

from __future__ import annotations


def interval_text(iv: list | None) -> str:
    """'   95% CI [lo, hi]', or nothing when there is no interval (no samples, or undetermined)."""
    if not iv or iv[0] is None or iv[1] is None:
        return ""
    return f"   95% CI [{iv[0]:.4g}, {iv[1]:.4g}]"


def _rows(result: dict, keys: tuple[tuple[str, str], ...], ci: dict | None = None) -> list[str]:
    ci = result.get("ci", {}) if ci is None else ci
    return [
        f"{name:<12} {result[key]:.4g}" + interval_text(ci.get(key))
        for key, name in keys
        if isinstance(result.get(key), int | float)
    ]


def _extrapolation(result: dict) -> list[str]:
    ex = result.get("extrapolation") or {}
    if ex.get("decades_beyond_data") is None:
        return [f"extrapolation {ex.get('warning', 'unknown')}"]
    lo, hi = ex["fit_compute_range"]
    line = (
        f"extrapolation {ex['decades_beyond_data']:.2f} decades beyond the fit's data "
        f"({lo:.2g}-{hi:.2g} FLOPs)"
    )
    return [line] + ([f"WARNING: {ex['warning']}"] if ex.get("warning") else [])


def _constrained(dc: dict) -> list[str]:
    out = [
        "",
        f"with {dc['unique_tokens']:.4g} unique tokens (Muennighoff et al. 2023; R_D* = "
        f"{dc['R_D_star']:.3g}, R_N* = {dc['R_N_star']:.3g}: {dc['decay_from']}):",
    ]
    keys = (("N", "N"), ("D", "D"), ("epochs", "epochs"), ("tokens_per_param", "tokens/param"))
    out += _rows(dc, (*keys, ("loss", "loss")), dc.get("ci", {}))
    free, on_u = dc["unlimited"], dc["unlimited_allocation_on_U"]
    out.append(
        f"loss cost    +{dc['loss_cost']:.4g} nats ({100 * dc['loss_cost_relative']:.3g}%) vs "
        f"unlimited data ({free['loss']:.5g} at N {free['N_opt']:.4g}, D {free['D_opt']:.4g})"
        + interval_text(dc.get("ci", {}).get("loss_cost"))
    )
    out.append(
        f"             the unlimited-data allocation on this pool: {on_u['epochs']:.3g} epochs, "
        f"loss {on_u['loss']:.5g}"
    )
    if not dc["binding"]:
        out.append("             (the pool holds the compute-optimal tokens: no constraint)")
    return out


def _inference(inf: dict, samples: int) -> list[str]:
    out = [f"\nwith {inf['inference_tokens']:.4g} inference tokens (Sardana et al. 2024):"]
    ici = inf.get("ci", {})
    keys = (("N", "N"), ("D", "D"), ("tokens_per_param", "tokens/param"))
    out += _rows(inf, keys, ici)
    out.append(
        f"total FLOPs  {inf['total_flops']:.4g} vs {inf['chinchilla_total_flops']:.4g} "
        f"Chinchilla-optimal ({100 * inf['saving']:.1f}% less)"
    )
    if ici:
        total = interval_text(ici.get("total_flops")).strip()
        if total:
            out.append(f"total FLOPs  {total}")
        out.append(f"(intervals from {min(samples, 200)} of the bootstrap samples)")
    return out


def _placement(r: dict) -> list[str]:
    opt = r["optimum_at_C"]
    out = [
        f"the optimum at this budget: N {opt['N_opt']:.4g}, D {opt['D_opt']:.4g}, "
        f"{opt['tokens_per_param']:.3g} tokens/param; this model is "
        f"{r['size_vs_optimum']:.3g}x its size"
    ]
    if "loss" in r:
        out.append(
            f"loss         {r['loss']:.5g} vs {opt['loss']:.5g} at the optimum "
            f"(+{r['excess_loss']:.3g} nats); the optimum matches it with "
            f"{100 * r['compute_efficiency']:.1f}% of the compute ({r['compute_equivalent']:.4g} FLOPs)"
        )
    dc = r.get("data_constrained")
    if dc:
        o = dc["optimum"]
        out.append(
            f"on {dc['unique_tokens']:.4g} unique tokens ({dc['epochs']:.2f} epochs; R_D* "
            f"{dc['R_D_star']:.3g}, R_N* {dc['R_N_star']:.3g}): loss {dc['loss']:.5g} vs "
            f"{o['loss']:.5g} at the data-constrained optimum (N {o['N']:.4g}, D {o['D']:.4g}, "
            f"{o['epochs']:.3g} epochs; +{dc['excess_loss']:.3g} nats)"
        )
    return out


QUESTIONS = {
    "budget": "compute-optimal allocation for a budget",
    "model_size": "tokens and budget at which this model size is compute-optimal",
    "tokens": "model size and budget for which this token count is compute-optimal",
    "target_loss": "the cheapest budget that reaches the target loss",
    "placement": "a given model and token count against the compute-optimal frontier",
}


def render(result: dict) -> str:
    """Every line `plan` prints for one answer."""
    q = result["question"]
    lines = [
        f"budget       {result['C']:.4g} FLOPs ({result['pf_days']:.4g} PF-days)",
        f"fit          {result['fit']}",
    ]
    if q != "budget":
        lines.append(f"question     {QUESTIONS[q]}")
    n, d = ("N_opt", "D_opt") if q == "budget" else ("N", "D")
    keys = ((n, n), (d, d))
    lines += _rows(result, (*keys, ("tokens_per_param", "tokens/param"), ("loss", "loss")))
    if q != "placement" and not result.get("ci"):
        published = not str(result["fit"]).startswith("lab fit from ")
        lines.append(
            "(no interval: a published point estimate carries no bootstrap samples)"
            if published
            else "(no interval: the fit file carries no bootstrap samples for this fit)"
        )
    if q == "placement":
        lines += _placement(result)
    lines += _extrapolation(result)
    if result.get("data_constrained") and q != "placement":
        lines += _constrained(result["data_constrained"])
    if result.get("inference"):
        lines += _inference(result["inference"], result.get("ci", {}).get("samples", 0))
    return "\n".join(lines)
