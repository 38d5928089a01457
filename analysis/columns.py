"""Column resolution: find N, D, C and loss in any table, by alias or by an explicit mapping.

External CSVs name their columns freely ("Model Size", "Training FLOP", "tokens"...). Names
are matched case-insensitively, ignoring spaces, dashes and underscores, against alias lists;
an explicit mapping (CLI `--n "Model Size"`) always wins.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from analysis.errors import ColumnError

# Canonical name -> aliases, most specific first. Keys are the canonical names used internally.
ALIASES: dict[str, tuple[str, ...]] = {
    "N": (
        "N",
        "params",
        "parameters",
        "model size",
        "num params",
        "n params",
        "nparams",
        "model params",
    ),
    "N_nonemb": (
        "N_nonemb",
        "N_no_emb",
        "N_non_embedding",
        "non embedding params",
        "nonemb params",
        "params nonemb",
        "params no emb",
    ),
    "D": (
        "D",
        "tokens",
        "num tokens",
        "n tokens",
        "training tokens",
        "train tokens",
        "dataset size",
    ),
    "C": (
        "C",
        "flops",
        "compute",
        "training flop",
        "training flops",
        "train flops",
        "C_6ND",
        "C_6N",
    ),
    "C_nonemb": ("C_nonemb", "C_6N_nonemb", "C_6ND_no_emb", "C_6ND_nonemb"),
    "C_detailed": ("C_detailed", "detailed flops", "flops detailed"),
    "loss": ("loss", "eval loss", "val loss", "validation loss", "final loss", "test loss"),
    "run_id": ("run_id", "run", "run name", "name"),
    "budget": ("budget", "flop budget", "isoflop budget"),
    "seed": ("seed",),
    "status": ("status",),
    "tuning": ("tuning",),
    "fraction": ("fraction", "flop fraction"),
}

PROVENANCE_COLUMNS = (
    "git_commit",
    "corpus_fingerprint",
    "config_hash",
    "device_kind",
    "device_count",
    "jax_version",
    "flax_version",
    "lab_version",
)


def _norm(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch not in " _-./")


def find_column(
    df: pd.DataFrame, canonical: str, mapping: Mapping[str, str] | None = None
) -> str | None:
    """The column of `df` holding `canonical`, or None; an explicit mapping must exist."""
    if mapping and mapping.get(canonical):
        wanted = mapping[canonical]
        if wanted in df.columns:
            return wanted
        by_norm = {_norm(c): c for c in df.columns}
        if _norm(wanted) in by_norm:
            return by_norm[_norm(wanted)]
        raise ColumnError(
            f"column {wanted!r} (given for {canonical}) is not in the table; "
            f"available columns: {', '.join(map(str, df.columns))}"
        )
    by_norm = {}
    for col in df.columns:
        by_norm.setdefault(_norm(col), col)
    for alias in ALIASES.get(canonical, (canonical,)):
        if _norm(alias) in by_norm:
            return by_norm[_norm(alias)]
    return None


def other_candidates(df: pd.DataFrame, canonical: str, chosen: str) -> list[str]:
    """Columns besides `chosen` that could also hold `canonical`, with different values.

    Alias matches count, and for the loss any column whose name says loss (train_loss next to
    val_loss); a copy with the same numbers (C next to C_6N) is no ambiguity.
    """
    names = {_norm(a) for a in ALIASES.get(canonical, (canonical,))}
    out = []
    for col in df.columns:
        if col == chosen:
            continue
        n = _norm(col)
        if n not in names and not (canonical == "loss" and "loss" in n):
            continue
        a = pd.to_numeric(df[col], errors="coerce")
        b = pd.to_numeric(df[chosen], errors="coerce")
        if not a.notna().any() or a.equals(b):
            continue
        out.append(str(col))
    return out


def numeric(df: pd.DataFrame, column: str) -> pd.Series:
    """The column as float64, with a clear error when it does not parse."""
    values = pd.to_numeric(df[column], errors="coerce").astype("float64")
    bad = values.isna() & df[column].notna()
    if bad.any():
        example = df.loc[bad, column].iloc[0]
        raise ColumnError(f"column {column!r} has a non-numeric value {example!r}; clean the file")
    return values


def as_bool(series: pd.Series) -> pd.Series:
    """Parse True/False/1/0/yes/no columns (CSV round trips turn bools into strings)."""
    text = series.astype("string").str.strip().str.lower()
    return text.isin(["true", "1", "yes", "y", "t", "1.0"]).astype(bool)
