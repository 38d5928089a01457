"""Writes that are all-or-nothing, local or on `gs://` (etils.epath).

A crash mid-write must never leave a half-written result.json or results table: readers
either see the old file or the new one. Locally that is write-to-temp + `os.replace`
(atomic on POSIX); on object stores a single object upload is atomic already (and is
retried on transient errors, lab.runtime.remote_io). The temp file
`mkstemp` makes is private (0600); it gets the mode any new file gets (0644 under the usual
umask) before it takes the final name.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from lab.runtime.remote_io import retrying


def is_remote(path: str | os.PathLike) -> bool:
    return "://" in str(path)


def as_path(path: str | os.PathLike):
    """A pathlib.Path locally, an etils epath.Path for URLs such as gs://bucket/dir."""
    if is_remote(path):
        _require_cloud(path)
        from etils import epath

        return epath.Path(str(path))
    return Path(path)


def _require_cloud(path: str | os.PathLike) -> None:
    """gs:// needs gcsfs (etils.epath's backend for it): say how to get it, once, clearly."""
    if str(path).startswith("gs://") and importlib.util.find_spec("gcsfs") is None:
        from lab.errors import ConfigError

        raise ConfigError(
            f"{path}: gs:// paths need the cloud extra (gcsfs, google-cloud-storage, "
            "tenacity); pip install 'scaling-lab[train,cloud]'"
        )


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    if is_remote(path):
        retrying(as_path(path).write_text)(text)
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask (reading it means setting it: put it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=_jsonable) + "\n")


def read_text(path: str | os.PathLike) -> str:
    """The file's text; a remote read is retried on transient errors."""
    if is_remote(path):
        return retrying(as_path(path).read_text)()
    return Path(path).read_text()


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(read_text(path))


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays, tuples, paths: what metrics and configs contain."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
