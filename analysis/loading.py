"""Turn a runner sweep directory or any results table into one `Dataset` (`sources.load`
dispatches over inputs; `examples` builds the shipped data sets with `from_frame`).

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

from analysis.columns import PROVENANCE_COLUMNS, as_bool, find_column, numeric, other_candidates
from analysis.conventions import DEFAULT_CONVENTIONS, Conventions
from analysis.csv_input import read_sweep_table
from analysis.errors import AnalysisError, ColumnError
from analysis.units import check_c_is_6nd, check_scaled_units

POINT_COLUMNS = ("run_id", "N", "D", "C", "loss", "budget", "seed")
SAMPLE_ROLES = ("smallest", "optimal", "largest")
RESULTS, CURVES = "results.csv", "curves.csv"
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
    columns: dict[str, str] = field(default_factory=dict)  # quantity -> column it was read from

    @property
    def has_budgets(self) -> bool:
        return bool(self.points["budget"].notna().all())

    @property
    def has_sizes(self) -> bool:
        """False for C-and-loss-only data, where only the frontier L(C) can be fitted."""
        return bool(self.points["N"].notna().all())


def _resolve_nc(
    df: pd.DataFrame,
    conv: Conventions,
    mapping: Mapping[str, str] | None,
    warnings: list[str],
    taken: dict[str, str] | None = None,
    scales: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Columns N, D, C, loss under the conventions; D from C = 6ND when absent and vice versa.

    `taken` records which column (or derivation) each quantity came from; `scales`
    multiplies N and D given in millions or billions (--n-scale, --d-scale). Without an N
    column, C and loss alone still make a frontier-only table (N, D left empty).
    """
    mapping = dict(mapping or {})
    taken = {} if taken is None else taken
    scales = dict(scales or {})
    n_key = "N" if conv.params == "total" else "N_nonemb"
    if conv.params == "nonemb" and mapping.get("N"):
        mapping.setdefault("N_nonemb", mapping.pop("N"))
    n_col = find_column(df, n_key, mapping)
    loss_col = find_column(df, "loss", mapping)
    d_col = find_column(df, "D", mapping)
    c_key = conv.c_key
    if mapping.get("C") and c_key != "C":
        mapping[c_key] = mapping["C"]
    c_col = find_column(df, c_key, mapping)
    if loss_col is None:
        raise ColumnError(f"no loss column among {list(map(str, df.columns))}; name it with --loss")
    if n_col is None and (c_col is None or d_col is not None):
        hint = "--n COLUMN" if conv.params == "total" else "--n COLUMN (non-embedding counts)"
        raise ColumnError(
            f"no {n_key} column ({conv.params} parameters) among {list(map(str, df.columns))}; "
            f"name it with {hint}"
        )
    if not conv.is_6nd and c_col is None:
        column = {"C": "C_6N", "C_nonemb": "C_6N_nonemb"}.get(c_key, c_key)
        raise ColumnError(
            f"FLOP convention {conv.flops!r} with {conv.params} N needs its FLOP column "
            f"({column}); name it with --c COLUMN or use --flops 6ND"
        )
    out = pd.DataFrame(index=df.index)
    out["loss"] = numeric(df, loss_col)
    _record(df, taken, warnings, "loss", loss_col, explicit="loss" in mapping)
    if n_col is None:  # C and loss only: the frontier L(C) is all the data support
        out["N"], out["D"], out["C"] = np.nan, np.nan, numeric(df, str(c_col))
        taken.update(N="(none)", D="(none)", C=str(c_col))
        warnings.append(
            f"no {n_key} column: only the loss-vs-compute frontier L(C) is fitted (Approaches "
            "1-3 need N; name its column with --n)"
        )
        return out
    out["N"] = numeric(df, n_col) * scales.get("N", 1.0)
    _record(df, taken, warnings, "N", n_col, explicit=n_key in mapping)
    if d_col is not None:
        out["D"] = numeric(df, d_col) * scales.get("D", 1.0)
        _record(df, taken, warnings, "D", d_col, explicit="D" in mapping)
    if c_col is not None:
        out["C"] = numeric(df, c_col)
        taken["C"] = str(c_col)
    if "D" not in out and "C" not in out:
        raise ColumnError("need tokens D or compute C (or both); name them with --d / --c")
    given_c, given_d = "C" in out, "D" in out
    if "D" not in out:
        out["D"] = out["C"] / (6.0 * out["N"])
        taken["D"] = f"derived: C / (6 N), {conv.params} parameters"
        warnings.append(f"D derived from C = 6ND under the {conv.params} parameter convention")
    if "C" not in out:
        out["C"] = 6.0 * out["N"] * out["D"]
        taken["C"] = "derived: 6 N D"
    check_scaled_units(out, given_c, given_d)
    if conv.is_6nd and given_c and given_d:
        check_c_is_6nd(out, str(c_col), conv, warnings)
    return out


def _record(
    df: pd.DataFrame, taken: dict[str, str], warnings: list[str], key: str, col: str, explicit: bool
) -> None:
    """Note the column taken for `key`; warn when another column could have been meant."""
    taken[key] = str(col)
    others = [] if explicit else other_candidates(df, key, col)
    if others:
        flag = {"N": "--n", "D": "--d", "loss": "--loss"}[key]
        warnings.append(
            f"{key}: took column {col!r}; the table also has {', '.join(map(repr, others))} "
            f"(choose with {flag} COLUMN)"
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


def drop_reasons(
    points: pd.DataFrame, taken: Mapping[str, str] | None = None
) -> tuple[pd.Series, dict[str, int]]:
    """Rows unusable for a fit, and how many for each reason (a row counts once, first reason).

    Reasons: a missing value (an empty cell or NaN), an infinite one, or a count or loss that
    is not positive. Columns read from the table are checked before derived ones (`taken`),
    so a bad C is reported as C, not as the D derived from it. Without an N column
    (frontier-only data) only C and loss are checked.
    """
    cols = ["N", "D", "C", "loss"] if points["N"].notna().any() else ["C", "loss"]
    cols.sort(key=lambda c: str((taken or {}).get(c, "")).startswith("derived"))
    bad = pd.Series(False, index=points.index)
    counts: dict[str, int] = {}
    for col in cols:
        v = points[col]
        for reason, hit in (
            (f"missing {col} (empty cell or NaN)", v.isna()),
            (f"infinite {col}", np.isinf(v)),
            (f"{col} <= 0", v <= 0),
        ):
            new = hit & ~bad
            if new.any():
                counts[reason] = int(new.sum())
                bad |= new
    return bad, counts


def _validate(
    points: pd.DataFrame, what: str, warnings: list[str], taken: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """The usable rows; the dropped ones counted by reason in one warning."""
    bad, counts = drop_reasons(points, taken)
    if bad.all():
        raise AnalysisError(
            f"no usable {what}: every row has a missing or non-positive N, D, C or loss "
            f"({', '.join(f'{n} {r}' for r, n in counts.items())})"
        )
    if counts:
        warnings.append(
            f"{int(bad.sum())} of {len(points)} {what} dropped: "
            + ", ".join(f"{n} with {r}" for r, n in counts.items())
        )
    return points.loc[~bad].reset_index(drop=True)


def from_frame(
    df: pd.DataFrame,
    conventions: Conventions = DEFAULT_CONVENTIONS,
    mapping: Mapping[str, str] | None = None,
    run_cols: list[str] | None = None,
    source: str = "<frame>",
    include_tuning: bool = False,
    scales: Mapping[str, float] | None = None,
) -> Dataset:
    """A Dataset from any table; several rows per run make curves, the last of each the point.

    `scales`: factors for N and D given in other units ({"N": 1e6} for millions).
    """
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
    taken: dict[str, str] = {}
    table = _resolve_nc(df, conventions, mapping, warnings, taken, scales)
    _extra_columns(df, table, mapping)
    table.insert(0, "run_id", _run_ids(df, run_cols, mapping).to_numpy())
    table = _validate(table, "rows", warnings, taken)
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
        columns=taken,
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


def curves_file(path: Path) -> str | None:
    """The curves table of a sweep or study data directory: curves.csv, else curves.csv.gz
    (a study's published data folder gzips it), else None."""
    return next((n for n in (CURVES, CURVES + ".gz") if (path / n).exists()), None)


def is_results_beside_curves(path: Path) -> bool:
    """A results.csv with its curves table beside it: a sweep's or a study data folder's
    (`scaling-lab sweep export`), read as that directory so Approach 1 gets its curves."""
    return path.name == RESULTS and path.is_file() and curves_file(path.parent) is not None


def _study_curve_rows(raw: pd.DataFrame, points: set[str]) -> pd.Series:
    """Curve rows of the study's runs: a row's source run (`source_run_id`, else its curve's
    `run_id`) is a point. A branching sweep's points are its cooldown branches, whose rows
    make each size's curve of cooled-down losses at every budget (`cooldowns_<trunk>`); its
    trunks' stable-LR curves stay in curves.csv but not here: unannealed, they bias the
    envelope (on the cpu_tiny demo Approach 1 gave a = 0.08 from the trunks alone, 0.12 from
    both, 0.45 from the cooldowns, against Approach 2's 0.57)."""
    curve = raw["run_id"].astype(str)
    if "source_run_id" not in raw.columns:
        return curve.isin(points)
    given = raw["source_run_id"].astype(str)
    source = given.where(raw["source_run_id"].notna() & (given != ""), curve)
    return source.isin(points)


def load_sweep_dir(
    path: Path,
    conventions: Conventions = DEFAULT_CONVENTIONS,
    include_tuning: bool = False,
    scales: Mapping[str, float] | None = None,
    source: str | None = None,
) -> Dataset:
    """A runner results directory or a study's data folder: results.csv (+ curves.csv or
    curves.csv.gz, + samples.json when present), each checked against the directory's
    tables.json manifest when it has one. `source`: how outputs name it (default the path)."""
    if not (path / RESULTS).exists():
        raise AnalysisError(f"{path} has no {RESULTS}; is it a sweep directory?")
    ds = from_frame(
        read_sweep_table(path, RESULTS),
        conventions,
        source=source or str(path),
        include_tuning=include_tuning,
        scales=scales,
    )
    if (path / "samples.json").exists():
        ds.samples = read_samples(path / "samples.json", ds.warnings)
    curves_name = curves_file(path)
    if curves_name is not None:
        raw = read_sweep_table(path, curves_name, allow_empty=True)
        if len(raw):
            raw = raw.loc[_study_curve_rows(raw, set(ds.points["run_id"]))]
            warnings: list[str] = []
            curves = _resolve_nc(raw, conventions, None, warnings, scales=scales)
            _extra_columns(raw, curves, None)
            curves.insert(0, "run_id", raw["run_id"].astype(str).to_numpy())
            ds.curves = _validate(curves, "curve rows", warnings).sort_values(["run_id", "D"])
            ds.warnings += [
                f"{curves_name}: {w}"
                for w in warnings
                if ("6ND" in w and "differs" in w) or "dropped" in w
            ]
    return ds
