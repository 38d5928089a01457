"""TFDS data dirs on object stores (`data_dir = "gs://bucket/tensorflow_datasets"`).

TFDS and the token caches read ArrayRecord files with array_record, which opens local files
only (google/array_record#120: its reader is a Riegeli FdReader). So a dataset in a bucket is
mirrored to local disk first, once: every file of DATA_DIR/NAME (all configs and versions) is
copied under `<local data dir>/mirror/<scheme>/<bucket path>/`, a file already there with the
same size is kept, and each copy lands under its final name only when complete (a killed copy
resumes without reading a torn file). The mirror is also the root of that data dir's token
caches. A `tfds:` corpus is held in memory anyway, so it fits on disk; C4-sized corpora go
through `data prepare` instead, whose shards must be on each host's disk for the same reason.
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
    from lab.runtime.remote_io import retrying

    try:
        import fsspec

        fs = fsspec.filesystem(str(url).split("://", 1)[0])
    except (ImportError, ValueError) as error:
        raise DataError(
            f"cannot read data_dir {url}: {error}; gs:// needs gcsfs "
            "(pip install 'scaling-lab[train,cloud]')"
        ) from None
    base = fs._strip_protocol(str(url).rstrip("/"))
    dataset = f"{base}/{name.split('/')[0]}"
    root = mirror_root(url)
    files = retrying(fs.find)(dataset, detail=True)
    if not files:
        raise DataError(
            f"TFDS dataset {name!r} is not in {url} (nothing under {dataset}); prepare it as "
            "ArrayRecord there, or give a local data_dir"
        )
    for remote, info in sorted(files.items()):
        local = root / remote[len(base) + 1 :]
        if local.exists() and local.stat().st_size == info["size"]:
            continue
        local.parent.mkdir(parents=True, exist_ok=True)
        partial = local.with_name(local.name + ".part")
        retrying(fs.get_file)(remote, str(partial))
        os.replace(partial, local)
    return root
