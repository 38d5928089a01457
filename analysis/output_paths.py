"""Report directories on object stores: `report --out gs://bucket/study/report`.

The report writer (matplotlib, plain files) writes a local directory; for a URL it writes a
temporary one, then copies every file up through fsspec (gcsfs for gs://), report pages
last, so a reader who finds the page finds its figures. Nothing is written to the bucket
until the whole report exists locally: a failed fit leaves the old report untouched.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from analysis.errors import AnalysisError
from analysis.input_paths import is_url

PAGES = ("report.html", "report.md")


@contextlib.contextmanager
def report_dir(out: str) -> Iterator[Path]:
    """A local directory to write the report into; uploaded to `out` on success if a URL."""
    if not is_url(out):
        yield Path(out)
        return
    with tempfile.TemporaryDirectory(prefix="scaling-lab-report-") as local:
        yield Path(local)
        upload_tree(Path(local), out)


def upload_tree(local: Path, url: str) -> list[str]:
    """Copy every file under `local` to `url`, the report pages last; the URLs written."""
    try:
        import fsspec

        fs = fsspec.filesystem(url.split("://", 1)[0])
    except (ImportError, ValueError) as error:
        raise AnalysisError(
            f"cannot write {url}: {error}; gs:// needs gcsfs (pip install 'scaling-lab[cloud]')"
        ) from None
    files = sorted(p for p in local.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.name in PAGES)  # stable: figures first, pages last
    written = []
    for path in files:
        target = f"{url.rstrip('/')}/{path.relative_to(local).as_posix()}"
        fs.pipe_file(target, path.read_bytes())
        written.append(target)
    return written
