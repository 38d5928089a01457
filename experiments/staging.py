"""Run directories on object stores: train in a local staging dir, sync to `gs://` and back.

`lab.train` writes its run directory with pathlib, so for a remote sweep (`--out gs://...`)
each run trains in a local copy: whatever the remote run dir holds (a checkpoint from a
preempted host) is downloaded first, and everything is uploaded when the run ends, fails,
or is interrupted (SIGTERM, a TPU preemption notice: lab checkpoints first), `result.json`
last so that its presence still means "finished".
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from lab.run_dir import RESULT_FILE
from lab.runtime.atomic_io import as_path, is_remote

LAST = (RESULT_FILE,)


def staging_root() -> Path:
    env = os.environ.get("SCALING_LAB_STAGING")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("SCALING_LAB_CACHE", os.path.expanduser("~/.cache/scaling-lab"))
    return Path(cache) / "staging"


def copy_tree(src, dst) -> int:
    """Copy every file under `src` to `dst` (local or epath), `result.json` last; file count."""
    files = [p for p in _walk(src)]
    files.sort(key=lambda p: p.name in LAST)
    for path in files:
        relative = str(path)[len(str(src)) :].lstrip("/")
        target = dst / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    return len(files)


def _walk(root) -> Iterator:
    if not root.exists():
        return
    for path in root.iterdir():
        if path.is_dir():
            yield from _walk(path)
        else:
            yield path


@contextlib.contextmanager
def local_run_dir(remote_run_dir: str | os.PathLike) -> Iterator[Path]:
    """A local directory to train in; synced from/to `remote_run_dir` if it is remote."""
    if not is_remote(remote_run_dir):
        yield Path(remote_run_dir)
        return
    remote = as_path(remote_run_dir)
    key = hashlib.sha256(str(remote_run_dir).encode()).hexdigest()[:12]
    local = staging_root() / f"{remote.name}-{key}"
    shutil.rmtree(local, ignore_errors=True)
    local.mkdir(parents=True)
    copy_tree(remote, local)
    try:
        yield local
    finally:
        copy_tree(local, remote)
        shutil.rmtree(local, ignore_errors=True)
