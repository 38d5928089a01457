"""TFDS data dirs on object stores (`data_dir = "gs://bucket/tensorflow_datasets"`).

TFDS and the token caches read ArrayRecord files with array_record, which opens local files
only (google/array_record#120: its reader is a Riegeli FdReader). So a dataset in a bucket is
mirrored to local disk first, once: every file of DATA_DIR/NAME (all configs and versions) is
copied under `<local data dir>/mirror/<scheme>/<bucket path>/`, a file already there with the
same size is kept, and each copy lands under its final name only when complete (a killed copy
resumes without reading a torn file). The mirror is also the root of that data dir's token
caches. A `prepared:gs://...` corpus (the shards of `data prepare`) is mirrored the same way, to each
host's own disk, when a run opens it.
"""

from __future__ import annotations

import os
from pathlib import Path

from lab.data.config import mirror_root
from lab.data.errors import DataError


def is_url(path: str | os.PathLike | None) -> bool:
    return path is not None and "://" in str(path)


def mirror_dataset(url: str, name: str) -> Path:
    """Copy URL/NAME's files (NAME's first part: every config and version) into
    `mirror_root(url)`; files already mirrored with the same size are kept. The mirror root."""
    root = mirror_root(url)
    if not mirror_tree(f"{str(url).rstrip('/')}/{name.split('/')[0]}", root / name.split("/")[0]):
        raise DataError(
            f"TFDS dataset {name!r} is not in {url}; prepare it as ArrayRecord there, or give "
            "a local data_dir"
        )
    return root


def mirror_prepared(url: str) -> Path:
    """A finished `data prepare` directory in a bucket, mirrored to this host's disk (once;
    set SCALING_LAB_DATA to a disk large enough for the shards). Its local path."""
    local = mirror_root(url)
    if not _filesystem(url).exists(f"{str(url).rstrip('/')}/manifest.json"):
        raise DataError(
            f"no finished prepared corpus at {url} (no manifest.json); create or finish it "
            f"with `scaling-lab data prepare SOURCE --out {url}`"
        )
    mirror_tree(url, local)
    return local


def mirror_tree(url: str, local: Path) -> int:
    """Copy every file under the URL directory `url` to `local` (same relative paths), each
    renamed into place when complete; files already there with the same size are kept.
    The number of files under `url` (0: nothing there)."""
    from lab.runtime.remote_io import retrying

    fs = _filesystem(url)
    base = fs._strip_protocol(str(url).rstrip("/"))
    files = retrying(fs.find)(base, detail=True)
    for remote, info in sorted(files.items()):
        target = local / remote[len(base) + 1 :]
        if target.exists() and target.stat().st_size == info["size"]:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        # per process: several processes of one host may mirror at once; each file still
        # lands whole (the last rename wins, with the same bytes)
        partial = target.with_name(f"{target.name}.part{os.getpid()}")
        retrying(fs.get_file)(remote, str(partial))
        os.replace(partial, target)
    return len(files)


def _filesystem(url: str):
    try:
        import fsspec

        return fsspec.filesystem(str(url).split("://", 1)[0])
    except (ImportError, ValueError) as error:
        raise DataError(
            f"cannot read {url}: {error}; gs:// needs gcsfs (pip install 'scaling-lab[train,cloud]')"
        ) from None
