"""Read a results table from disk honestly: any delimiter, a clear error for an empty or torn file.

Analysts bring tab- and semicolon-separated exports as often as commas, so the delimiter is
sniffed (csv.Sniffer) rather than assumed. A sweep directory may carry `tables.json`, the
manifest the sweep writes next to its tables ({"schema": 1, "files": {NAME: {"rows", "sha256"}}});
a table that does not match it (a copy cut mid-row, an edit after the sweep) is refused.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from pathlib import Path

import pandas as pd

from analysis.errors import AnalysisError

MANIFEST = "tables.json"
DELIMITERS = ",\t;|"
SNIFF_LINES = 20


def _text(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise AnalysisError(f"{path} is not UTF-8 text ({e}); export it as CSV (UTF-8)") from e


def _delimiter(text: str) -> str:
    """The field separator of a table's text: csv.Sniffer on its first lines, checked against
    the header (the separator that splits the header into the most fields wins a disagreement;
    a one-column table gets a comma)."""
    head = "\n".join(text.splitlines()[:SNIFF_LINES])
    header = head.split("\n", 1)[0]

    def fields(sep: str) -> int:
        return len(next(csv.reader([header], delimiter=sep), []))

    try:
        sniffed = csv.Sniffer().sniff(head, delimiters=DELIMITERS).delimiter
    except csv.Error:
        sniffed = ","
    widest = max(DELIMITERS, key=fields)
    return sniffed if fields(sniffed) >= fields(widest) else widest


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it ends in .gz."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise AnalysisError(f"{path} is not a readable gzip file ({e})") from e
    return raw


def frame_from_bytes(
    raw: bytes, path: Path, allow_empty: bool = False, sep: str | None = None
) -> pd.DataFrame:
    """A DataFrame from CSV bytes, the delimiter `sep` or sniffed; an empty file is an error
    unless `allow_empty` (a sweep's curves.csv before any run reported)."""
    if allow_empty and not raw.strip():
        return pd.DataFrame()
    if not raw.strip():
        raise AnalysisError(
            f"{path} is empty ({len(raw)} bytes); give a CSV with a header row and one row per run"
        )
    text = _text(raw, path)
    sep = sep or _delimiter(text)
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise AnalysisError(f"{path} is not a readable table ({e}); check it is a CSV") from e
    if df.empty and not allow_empty:
        raise AnalysisError(f"{path} has a header but no data rows")
    return df


def read_table(path: Path) -> pd.DataFrame:
    """A CSV (or .csv.gz) file, any of , tab ; | as the delimiter."""
    return frame_from_bytes(read_bytes(path), path)


def data_rows(raw: bytes) -> int:
    """Data rows of CSV bytes (records after the header; quoted newlines stay in their field)."""
    text = raw.decode("utf-8", errors="replace")
    return max(sum(1 for rec in csv.reader(io.StringIO(text)) if rec) - 1, 0)


def check_manifest(directory: Path, name: str, raw: bytes) -> None:
    """Refuse `directory/name` when `directory/tables.json` records other bytes for it.

    No manifest (an old sweep, a hand-made directory) or no entry for `name`: nothing to check.
    """
    manifest_path = directory / MANIFEST
    if not manifest_path.exists():
        return
    try:
        entry = json.loads(manifest_path.read_text())["files"].get(name)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise AnalysisError(
            f"{manifest_path} is not a valid table manifest ({e}); "
            f"run `scaling-lab sweep table {directory}` to rebuild it"
        ) from e
    if entry is None:
        return
    digest = hashlib.sha256(raw).hexdigest()
    if digest == entry.get("sha256"):
        return
    raise AnalysisError(
        f"{directory / name} does not match {MANIFEST}: it has {data_rows(raw)} data rows where "
        f"the manifest records {entry.get('rows')}, and its SHA-256 checksum differs (cut short "
        f"or changed after the sweep wrote it); run `scaling-lab sweep table {directory}` to "
        "rebuild it"
    )


def read_sweep_table(directory: Path, name: str, allow_empty: bool = False) -> pd.DataFrame:
    """`directory/name`, checked against the sweep's manifest when there is one. The sweep
    writes commas, so nothing is sniffed (a JSON cell full of other separators cannot mislead)."""
    path = directory / name
    raw = read_bytes(path)
    check_manifest(directory, name, raw)
    return frame_from_bytes(raw, path, allow_empty, sep=",")
