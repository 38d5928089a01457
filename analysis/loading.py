"""Load a runner sweep directory, an external CSV, or a shipped example into one `Dataset`.

Every loader returns the same shape: `points` (one row per finished run: run_id, N, D, C,
loss, budget, seed) and optionally `curves` (intermediate evaluations: run_id, N, D, C,
loss), both under the explicit `Conventions`, plus warnings and provenance.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.columns import PROVENANCE_COLUMNS, as_bool, find_column, numeric
from analysis.conventions import DEFAULT_CONVENTIONS, Conventions
from analysis.errors import AnalysisError, ColumnError

POINT_COLUMNS = ("run_id", "N", "D", "C", "loss", "budget", "seed")
SAMPLE_ROLES = ("smallest", "optimal", "largest")
SAMPLE_KEYS = ("budget", "run_id", "N", "D", "loss", "role", "prompt", "completion")


@dataclass
class Dataset:
    """Final-loss points and optional training curves, with their conventions and history."""

    points: pd.DataFrame
    conventions: Conventions
    source: str
    curves: pd.DataFrame | None = None
    warnings: list[str] = field(default_factory=list)
    provenance: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    samples: list[dict] | None = None  # text samples of a sweep (samples.json), per budget
    raw: pd.DataFrame | None = None  # the table as read, every row and column (cost, MFU, ...)

    @property
    def has_budgets(self) -> bool:
        return bool(self.points["budget"].notna().all())


def _resolve_nc(
    df: pd.DataFrame, conv: Conventions, mapping: Mapping[str, str] | None, warnings: list[str]
) -> pd.DataFrame:
    """Columns N, D, C, loss under the conventions; D from C = 6ND when absent and vice versa."""
    mapping = dict(mapping or {})
    n_key = "N" if conv.params == "total" else "N_nonemb"
    if conv.params == "nonemb" and mapping.get("N"):
        mapping.setdefault("N_nonemb", mapping.pop("N"))
    n_col = find_column(df, n_key, mapping)
    loss_col = find_column(df, "loss", mapping)
    d_col = find_column(df, "D", mapping)
    c_key = ("C" if conv.params == "total" else "C_nonemb") if conv.flops == "6ND" else "C_detailed"
    if mapping.get("C") and c_key != "C":
        mapping[c_key] = mapping["C"]
    c_col = find_column(df, c_key, mapping)
    if n_col is None:
        hint = "--n COLUMN" if conv.params == "total" else "--n COLUMN (non-embedding counts)"
        raise ColumnError(
            f"no {n_key} column ({conv.params} parameters) among {list(map(str, df.columns))}; "
            f"name it with {hint}"
        )
    if loss_col is None:
        raise ColumnError(f"no loss column among {list(map(str, df.columns))}; name it with --loss")
    out = pd.DataFrame(index=df.index)
    out["N"] = numeric(df, n_col)
    out["loss"] = numeric(df, loss_col)
    if d_col is not None:
        out["D"] = numeric(df, d_col)
    if conv.flops == "detailed":
        if c_col is None:
            raise ColumnError(
                "FLOP convention 'detailed' needs a detailed FLOP column (C_detailed); "
                "name it with --c COLUMN or use --flops 6ND"
            )
        out["C"] = numeric(df, c_col)
    elif c_col is not None:
        out["C"] = numeric(df, c_col)
        if d_col is not None:
            _check_c_is_6nd(out, c_col, conv, warnings)
    if "D" not in out and "C" not in out:
        raise ColumnError("need tokens D or compute C (or both); name them with --d / --c")
    if "D" not in out:
        out["D"] = out["C"] / (6.0 * out["N"])
        warnings.append(f"D derived from C = 6ND under the {conv.params} parameter convention")
    if "C" not in out:
        out["C"] = 6.0 * out["N"] * out["D"]
    return out


C_TOLERANCE = 0.01  # relative disagreement between a given C and 6ND worth a warning


def _check_c_is_6nd(out: pd.DataFrame, c_col: str, conv: Conventions, warnings: list[str]) -> None:
    """Keep a given C that agrees with 6ND (rounding); where it disagrees, the convention wins.

    Outputs say "C = 6 N D" under this convention, so a C column that is something else (a
    detailed count, another parameter count) is replaced by 6ND, loudly.
    """
    six_nd = 6.0 * out["N"] * out["D"]
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = ((out["C"] - six_nd) / six_nd).abs()
    off = rel > C_TOLERANCE
    missing = out["C"].isna()
    out.loc[missing, "C"] = six_nd[missing]
    if off.any():
        out.loc[off, "C"] = six_nd[off]
        warnings.append(
            f"C column {c_col!r} differs from 6ND ({conv.params} parameters) by more than "
            f"{100 * C_TOLERANCE:.0f}% in {int(off.sum())} of {len(out)} rows (up to "
            f"{100 * float(rel.max()):.3g}%); used C = 6ND there, as --flops 6ND says, and the "
            "given C elsewhere. If the column is a detailed FLOP count, pass --flops detailed"
        )


def _extra_columns(df: pd.DataFrame, out: pd.DataFrame, mapping: Mapping[str, str] | None) -> None:
    for key in ("budget", "seed", "fraction"):
        col = find_column(df, key, mapping)
        out[key] = numeric(df, col) if col is not None else np.nan


def _run_ids(
    df: pd.DataFrame, run_cols: list[str] | None, mapping: Mapping[str, str] | None
) -> pd.Series:
    if run_cols:
        missing = [c for c in run_cols if c not in df.columns]
        if missing:
            raise ColumnError(f"run-id columns {missing} are not in the table")
        return df[run_cols].astype(str).agg("|".join, axis=1)
    col = find_column(df, "run_id", mapping)
    if col is not None:
        return df[col].astype(str)
    return pd.Series([f"row{i}" for i in range(len(df))], index=df.index)


def _validate(points: pd.DataFrame, what: str) -> pd.DataFrame:
    bad = ~np.isfinite(points[["N", "D", "C", "loss"]].to_numpy()).all(axis=1)
    bad |= (points[["N", "D", "C", "loss"]] <= 0).any(axis=1)
    if bad.all():
        raise AnalysisError(
            f"no usable {what}: every row has a missing or non-positive N, D, C or loss"
        )
    return points.loc[~bad].reset_index(drop=True)


def from_frame(
    df: pd.DataFrame,
    conventions: Conventions = DEFAULT_CONVENTIONS,
    mapping: Mapping[str, str] | None = None,
    run_cols: list[str] | None = None,
    source: str = "<frame>",
    include_tuning: bool = False,
) -> Dataset:
    """A Dataset from any table; several rows per run make curves, the last of each the point."""
    raw = df
    warnings: list[str] = []
    status_col = find_column(df, "status", mapping)
    if status_col is not None:
        keep = df[status_col].astype(str).str.lower() == "done"
        if (~keep).any():
            warnings.append(f"{int((~keep).sum())} runs not 'done' (diverged, ...) left out")
        df = df.loc[keep]
    tuning_col = find_column(df, "tuning", mapping)
    if tuning_col is not None and not include_tuning:
        df = df.loc[~as_bool(df[tuning_col])]
    if df.empty:
        raise AnalysisError(f"{source}: no finished runs to analyse")
    table = _resolve_nc(df, conventions, mapping, warnings)
    _extra_columns(df, table, mapping)
    table.insert(0, "run_id", _run_ids(df, run_cols, mapping).to_numpy())
    table = _validate(table, "rows")
    curves = None
    if table["run_id"].duplicated().any():
        curves = table.sort_values(["run_id", "D"]).reset_index(drop=True)
        table = curves.groupby("run_id", sort=False).tail(1).reset_index(drop=True)
    provenance = {
        c: sorted(map(str, df[c].dropna().unique()))[:10]
        for c in PROVENANCE_COLUMNS
        if c in df.columns
    }
    return Dataset(
        points=table[list(POINT_COLUMNS)].reset_index(drop=True),
        conventions=conventions,
        source=source,
        curves=curves,
        warnings=warnings,
        provenance=provenance,
        raw=raw,
    )


def read_samples(path: Path, warnings: list[str]) -> list[dict] | None:
    """A sweep's samples.json: a list of {budget, run_id, N, D, loss, role, prompt,
    completion}. A malformed file is a warning, not an error: the fits do not depend on it."""
    try:
        items = json.loads(path.read_text())
        if not isinstance(items, list):
            raise ValueError("not a JSON list")
        for i, item in enumerate(items):
            missing = [k for k in SAMPLE_KEYS if not isinstance(item, dict) or k not in item]
            if missing:
                raise ValueError(f"entry {i} lacks {missing}")
            if item["role"] not in SAMPLE_ROLES:
                raise ValueError(f"entry {i} has role {item['role']!r}, not one of {SAMPLE_ROLES}")
    except (OSError, ValueError) as e:
        warnings.append(f"{path} ignored: {e}")
        return None
    return [{k: item[k] for k in SAMPLE_KEYS} for item in items]


def drop_highest(ds: Dataset, k: int) -> Dataset:
    """Leave out the k runs with the highest final loss (Besiroglu et al. 2024 dropped 5 of the
    digitised Chinchilla runs); which ones goes into the notes, so every output records it."""
    if k < 0 or k >= len(ds.points):
        raise AnalysisError(
            f"--drop-highest takes 0 .. {len(ds.points) - 1} (runs in the data); got {k}"
        )
    if k == 0:
        return ds
    top = ds.points["loss"].nlargest(k)
    ids = ds.points.loc[top.index, "run_id"].astype(str)
    ds.points = ds.points.drop(top.index).reset_index(drop=True)
    if ds.curves is not None:
        ds.curves = ds.curves.loc[~ds.curves["run_id"].astype(str).isin(set(ids))]
    shown = ", ".join(ids.iloc[:10]) + (", ..." if k > 10 else "")
    ds.notes.append(
        f"--drop-highest {k}: the {k} highest-loss runs left out (loss >= {top.min():.4g}; "
        f"run ids {shown})"
    )
    return ds


def load_sweep_dir(
    path: Path, conventions: Conventions = DEFAULT_CONVENTIONS, include_tuning: bool = False
) -> Dataset:
    """A runner results directory: results.csv (+ curves.csv when present)."""
    results = path / "results.csv"
    if not results.exists():
        raise AnalysisError(f"{path} has no results.csv; is it a sweep directory?")
    ds = from_frame(
        pd.read_csv(results), conventions, source=str(path), include_tuning=include_tuning
    )
    if (path / "samples.json").exists():
        ds.samples = read_samples(path / "samples.json", ds.warnings)
    curves_path = path / "curves.csv"
    if curves_path.exists():
        raw = pd.read_csv(curves_path)
        if len(raw):
            raw = raw.loc[raw["run_id"].astype(str).isin(set(ds.points["run_id"]))]
            warnings: list[str] = []
            curves = _resolve_nc(raw, conventions, None, warnings)
            _extra_columns(raw, curves, None)
            curves.insert(0, "run_id", raw["run_id"].astype(str).to_numpy())
            ds.curves = _validate(curves, "curve rows").sort_values(["run_id", "D"])
            ds.warnings += [f"curves.csv: {w}" for w in warnings if "6ND" in w and "differs" in w]
    return ds


def load(
    source: str | Path,
    conventions: Conventions = DEFAULT_CONVENTIONS,
    mapping: Mapping[str, str] | None = None,
    run_cols: list[str] | None = None,
    include_tuning: bool = False,
    drop_highest_k: int | None = None,
) -> Dataset:
    """A sweep directory, a CSV file (plain or .gz), or `example:NAME`.

    `drop_highest_k` leaves out that many highest-loss runs; for `example:chinchilla` it
    replaces the 5 its loader drops by default (0 keeps all 245).
    """
    text = str(source)
    if text.startswith("example:"):
        from analysis.examples import load_example

        name = text.split(":", 1)[1]
        if name == "chinchilla" and drop_highest_k is not None:
            return load_example(name, conventions, drop_highest=drop_highest_k)
        ds = load_example(name, conventions)
    else:
        path = Path(text)
        if path.is_dir():
            ds = load_sweep_dir(path, conventions, include_tuning)
        elif not path.exists():
            raise AnalysisError(f"{path} does not exist; give a sweep directory or a CSV file")
        else:
            ds = from_frame(
                pd.read_csv(path), conventions, mapping, run_cols, str(path), include_tuning
            )
    return drop_highest(ds, drop_highest_k) if drop_highest_k else ds
