"""One entry point for every kind of input: a sweep directory, a CSV file, or `example:NAME`.

Kept apart from `loading` (tables to a Dataset) and `examples` (the shipped data, which
builds on `loading`), so neither of those needs the other's caller: no import circle.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from analysis.conventions import DEFAULT_CONVENTIONS, Conventions
from analysis.csv_input import read_table
from analysis.errors import AnalysisError
from analysis.examples import load_example
from analysis.input_paths import input_path
from analysis.loading import (
    Dataset,
    drop_highest,
    from_frame,
    is_results_beside_curves,
    load_sweep_dir,
)


def load(
    source: str | Path,
    conventions: Conventions = DEFAULT_CONVENTIONS,
    mapping: Mapping[str, str] | None = None,
    run_cols: list[str] | None = None,
    include_tuning: bool = False,
    drop_highest_k: int | None = None,
    scales: Mapping[str, float] | None = None,
) -> Dataset:
    """A sweep directory, a CSV file (plain or .gz, any common delimiter), or `example:NAME`.

    A `results.csv` with its curves table beside it (a sweep's, or a study's data folder
    under docs/study/) is read as its directory: curves, samples and manifest included.

    `drop_highest_k` leaves out that many highest-loss runs; for `example:chinchilla` it
    replaces the 5 its loader drops by default (0 keeps all 245). `scales` multiplies N and
    D given in other units ({"N": 1e6} when N is in millions).
    """
    text = str(source)
    if text.startswith("example:"):
        if scales and any(v != 1.0 for v in scales.values()):
            raise AnalysisError("--n-scale/--d-scale apply to your own tables, not to --example")
        name = text.split(":", 1)[1]
        if name == "chinchilla" and drop_highest_k is not None:
            return load_example(name, conventions, drop_highest=drop_highest_k)
        ds = load_example(name, conventions)
    else:
        path = input_path(text)  # a local path, or gs://... read through fsspec
        if path.is_dir():
            ds = load_sweep_dir(path, conventions, include_tuning, scales)
        elif is_results_beside_curves(path) and not mapping and not run_cols:
            ds = load_sweep_dir(path.parent, conventions, include_tuning, scales, source=text)
        elif not path.exists():
            raise AnalysisError(f"{path} does not exist; give a sweep directory or a CSV file")
        else:
            ds = from_frame(
                read_table(path),
                conventions,
                mapping,
                run_cols,
                str(path),
                include_tuning,
                scales,
            )
    return drop_highest(ds, drop_highest_k) if drop_highest_k else ds
