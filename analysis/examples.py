"""The two published data sets shipped with the package (see analysis/data/README.md).

Loaded through importlib.resources so a wheel install needs nothing outside the package.
"""

from __future__ import annotations

import gzip
import io
from importlib import resources

import pandas as pd

from analysis.conventions import DEFAULT_CONVENTIONS, Conventions
from analysis.errors import AnalysisError
from analysis.loading import Dataset, from_frame

EXAMPLES = {
    "chinchilla": "chinchilla_epoch2024.csv",
    "misfitting": "misfitting2025_checkpoints.csv.gz",
}
MISFITTING_RUN_COLUMNS = ["model", "total_steps", "peak_lr", "sweep"]


def read_data_file(name: str) -> pd.DataFrame:
    """A CSV (or gzipped CSV) from analysis/data as a DataFrame."""
    raw = resources.files("analysis").joinpath("data", name).read_bytes()
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return pd.read_csv(io.BytesIO(raw))


def chinchilla_frame(drop_highest: int = 5) -> pd.DataFrame:
    """Besiroglu et al. 2024's digitised Chinchilla runs, minus the `drop_highest` top losses."""
    df = read_data_file(EXAMPLES["chinchilla"])
    if drop_highest:
        df = df.drop(df["loss"].nlargest(drop_highest).index)
    return df.reset_index(drop=True)


def load_example(
    name: str, conventions: Conventions = DEFAULT_CONVENTIONS, drop_highest: int = 5
) -> Dataset:
    """`chinchilla` (245 final losses, total params, C given) or `misfitting` (checkpoints)."""
    if name == "chinchilla":
        if conventions.params != "total":
            raise AnalysisError(
                "the Chinchilla data has total parameter counts only; use --params total"
            )
        if conventions.flops != "6ND":
            raise AnalysisError("the Chinchilla data gives C = 6ND only; use --flops 6ND")
        if drop_highest < 0 or drop_highest >= 245:
            raise AnalysisError(f"--drop-highest takes 0 .. 244 for this data; got {drop_highest}")
        ds = from_frame(
            chinchilla_frame(drop_highest),
            conventions,
            {"N": "Model Size", "C": "Training FLOP", "loss": "loss"},
            source="example:chinchilla",
        )
        ds.notes.append(
            "Chinchilla runs digitised by Besiroglu et al. 2024 (epoch-research/analyzing-chinchilla)"
            + (
                f"; the {drop_highest} highest-loss points dropped, as they did"
                if drop_highest == 5
                else f"; the {drop_highest} highest-loss points dropped (Besiroglu et al. drop 5)"
            )
        )
        return ds
    if name == "misfitting":
        mapping = {"N": "N", "N_nonemb": "N_no_emb", "D": "D", "loss": "loss"}
        if conventions.flops == "detailed":
            mapping["C_detailed"] = "C" if conventions.params == "total" else "C_no_emb"
        ds = from_frame(
            read_data_file(EXAMPLES["misfitting"]),
            conventions,
            mapping,
            run_cols=MISFITTING_RUN_COLUMNS,
            source="example:misfitting",
        )
        ds.notes.append(
            "checkpoints of Li, Kudugunta and Zettlemoyer 2025 (hadasah/scaling_laws); "
            "one run = (model, total_steps, peak_lr, sweep)"
        )
        return ds
    raise AnalysisError(f"unknown example {name!r}; choose one of {sorted(EXAMPLES)}")
