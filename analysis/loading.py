"""Load a runner sweep directory, an external CSV, or a shipped example into one `Dataset`.

Every loader returns the same shape: `points` (one row per finished run: run_id, N, D, C,
loss, budget, seed) and optionally `curves` (intermediate evaluations: run_id, N, D, C,
loss), both under the explicit `Conventions`, plus warnings and provenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.columns import PROVENANCE_COLUMNS, as_bool, find_column, numeric
from analysis.conventions import DEFAULT_CONVENTIONS, Conventions
from analysis.errors import AnalysisError, ColumnError

POINT_COLUMNS = ("run_id", "N", "D", "C", "loss", "budget", "seed")


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
    elif d_col is not None:
        out["C"] = 6.0 * out["N"] * out["D"]
    elif c_col is not None:
        out["C"] = numeric(df, c_col)
    if "D" not in out and "C" not in out:
        raise ColumnError("need tokens D or compute C (or both); name them with --d / --c")
    if "D" not in out:
        out["D"] = out["C"] / (6.0 * out["N"])
        warnings.append(f"D derived from C = 6ND under the {conv.params} parameter convention")
    if "C" not in out:
        out["C"] = 6.0 * out["N"] * out["D"]
    return out


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
    )


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
    return ds


def load(
    source: str | Path,
    conventions: Conventions = DEFAULT_CONVENTIONS,
    mapping: Mapping[str, str] | None = None,
    run_cols: list[str] | None = None,
    include_tuning: bool = False,
) -> Dataset:
    """A sweep directory, a CSV file (plain or .gz), or `example:NAME`."""
    text = str(source)
    if text.startswith("example:"):
        from analysis.examples import load_example

        return load_example(text.split(":", 1)[1], conventions)
    path = Path(text)
    if path.is_dir():
        return load_sweep_dir(path, conventions, include_tuning)
    if not path.exists():
        raise AnalysisError(f"{path} does not exist; give a sweep directory or a CSV file")
    df = pd.read_csv(path)
    return from_frame(df, conventions, mapping, run_cols, str(path), include_tuning)
