"""`scaling-lab sweep export DIR --out DATA`: a finished sweep's tables, published.

A study's data folder (docs/study/<study>/data/) holds what an analyst needs to refit the
study and what `scaling-lab report DATA/results.csv` needs to regenerate its report, and
nothing else (no checkpoints, no run directories):

    results.csv     one row per run, every C and N convention the runs recorded (as the sweep
                    wrote it: its bytes, so its checksum is the sweep's)
    curves.csv.gz   every held-out eval (Approach 1); gzipped with no timestamp, so the same
                    table gives the same bytes
    sweep.toml      the sweep file;  plan.json  the solved grid
    samples.json    the text samples (when `sweep samples` wrote them)
    costs.csv       what each run directory cost, trunk segments included
                    (experiments.run_costs): the sweep's FLOPs and time, from plain files
    tables.json     rows and SHA-256 of both tables (of the uncompressed curves), which the
                    analysis checks, as for a sweep directory

The sweep must be finished (every planned run has a row) and its tables must match its own
tables.json: a half-run or hand-edited table is not published.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from analysis.csv_input import data_rows
from experiments.results import CURVES_FILE, RESULTS_FILE, TABLES_FILE, TABLES_SCHEMA, read_csv
from experiments.run_costs import COSTS_FILE, cost_rows, costs_csv
from experiments.sweep_dir import PLAN_FILE, SWEEP_FILE, run_state
from lab.errors import ConfigError
from lab.run_status import FINISHED

SAMPLES_FILE = "samples.json"
CURVES_GZ = CURVES_FILE + ".gz"
SIZE_LIMIT = 2_000_000  # bytes per study: the budget for docs/study/<study>/data


@dataclass
class Export:
    """What `export_sweep` wrote."""

    out: Path
    runs: int
    evals: int
    files: dict[str, int]  # name -> bytes

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())


def _checked_table(root: Path, name: str, manifest: dict) -> bytes:
    """A table's bytes, refused when tables.json records other bytes for it."""
    path = root / name
    if not path.exists():
        raise ConfigError(f"{path} is missing; run `scaling-lab sweep table {root}` to rebuild it")
    raw = path.read_bytes()
    entry = manifest.get("files", {}).get(name)
    if entry is not None and hashlib.sha256(raw).hexdigest() != entry.get("sha256"):
        raise ConfigError(
            f"{path} does not match {root / TABLES_FILE} (cut short or edited); run "
            f"`scaling-lab sweep table {root}` to rebuild it, then export again"
        )
    return raw


def _check_finished(root: Path, plan: dict) -> None:
    """Every run of plan.json has a row in results.csv (done, diverged or failed), and every
    trunk segment of a branching sweep (no point of the study: no row) its result."""
    recorded = {row["run_id"] for row in read_csv(root / RESULTS_FILE)}
    missing = [p["run_id"] for p in plan.get("points", []) if not _finished(root, p, recorded)]
    if missing:
        raise ConfigError(
            f"{root}: {len(missing)} of {len(plan.get('points', []))} planned runs have no "
            f"result yet (e.g. {missing[0]}); finish the sweep (`scaling-lab sweep run FILE "
            f"--out {root}`) before exporting it"
        )


def _finished(root: Path, point: dict, recorded: set[str]) -> bool:
    """A point has its row in results.csv; a trunk segment (no row) its finished result."""
    if point.get("role") == "trunk":
        return run_state(root, point["run_id"]) in FINISHED
    return point["run_id"] in recorded


def _write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename: a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_sweep(sweep: str | os.PathLike, out: str | os.PathLike) -> Export:
    """Write a finished sweep's tables, sweep file and plan into `out` (see the module)."""
    root, dest = Path(sweep), Path(out)
    if str(sweep).startswith("gs://"):
        raise ConfigError("export reads a local sweep directory; copy it here first")
    for name in (SWEEP_FILE, PLAN_FILE, RESULTS_FILE):
        if not (root / name).exists():
            raise ConfigError(
                f"{root} has no {name}: not a sweep directory (give the DIR of `sweep run --out`)"
            )
    manifest_path = root / TABLES_FILE
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    results = _checked_table(root, RESULTS_FILE, manifest)
    curves = _checked_table(root, CURVES_FILE, manifest)
    plan_text = (root / PLAN_FILE).read_text()
    _check_finished(root, json.loads(plan_text))
    dest.mkdir(parents=True, exist_ok=True)
    files = {
        RESULTS_FILE: results,
        CURVES_GZ: gzip.compress(curves, compresslevel=9, mtime=0),
        SWEEP_FILE: (root / SWEEP_FILE).read_bytes(),
        PLAN_FILE: plan_text.encode(),
        COSTS_FILE: costs_csv(cost_rows(root)),
    }
    if (root / SAMPLES_FILE).exists():
        files[SAMPLES_FILE] = (root / SAMPLES_FILE).read_bytes()
    tables = {
        RESULTS_FILE: {"rows": data_rows(results), "sha256": hashlib.sha256(results).hexdigest()},
        CURVES_GZ: {"rows": data_rows(curves), "sha256": hashlib.sha256(curves).hexdigest()},
    }
    files[TABLES_FILE] = (
        json.dumps({"schema": TABLES_SCHEMA, "files": tables}, indent=2, sort_keys=True) + "\n"
    ).encode()
    for name, data in files.items():
        _write_bytes(dest / name, data)
    (dest / CURVES_FILE).unlink(missing_ok=True)  # an older plain copy would be read first
    if SAMPLES_FILE not in files:
        (dest / SAMPLES_FILE).unlink(missing_ok=True)
    return Export(
        out=dest,
        runs=tables[RESULTS_FILE]["rows"],
        evals=tables[CURVES_GZ]["rows"],
        files={name: len(data) for name, data in files.items()},
    )


def format_export(done: Export) -> str:
    """The command's report: what was written and how large it is."""
    sizes = ", ".join(f"{name} ({size / 1024:.0f} KiB)" for name, size in done.files.items())
    line = (
        f"wrote {done.out}: {done.runs} runs, {done.evals} evals; {sizes}; "
        f"{done.total_bytes / 1e6:.2f} MB in all"
    )
    if done.total_bytes > SIZE_LIMIT:
        line += f" (over the {SIZE_LIMIT / 1e6:.0f} MB meant for a study's data folder)"
    return line
