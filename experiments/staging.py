"""Moving a run directory on an object store (what is left of staging).

Runs on `gs://` are no longer trained in a local copy: lab.train writes the run directory
in the bucket itself (orbax/TensorStore writes the checkpoints there, the JSONL logs are
rewritten whole at each checkpoint), so a SIGKILLed or preempted run resumes from the bucket.
The old staging copy uploaded only when the run ended: a kill -9 left nothing in the bucket.
bench/gcs_checkpoint.py measured both paths against the loopback emulator (see
bench/results/gcs_checkpoint.json): for a micro run's state they cost the same within the
noise (0.2-0.4 s); for a 48 MB state the local save + upload was 2.2-2.8x faster there (106
requests per direct save against 32, served one at a time by the emulator's Python). That
measures the emulator, not a bucket; staging is not kept, because a run that is killed or
preempted must find its checkpoints in the bucket.

An object store cannot rename a folder: `copy_tree` copies one file by file, `result.json`
last (its presence still means "finished"), for `--retry-diverged` moving a run aside.
"""

from __future__ import annotations

from collections.abc import Iterator

from lab.run_dir import RESULT_FILE
from lab.runtime.remote_io import retrying

LAST = (RESULT_FILE,)


def copy_tree(src, dst) -> int:
    """Copy every file under `src` to `dst` (local or epath), `result.json` last; file count."""
    files = [p for p in _walk(src)]
    files.sort(key=lambda p: p.name in LAST)
    for path in files:
        relative = str(path)[len(str(src)) :].lstrip("/")
        target = dst / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        retrying(target.write_bytes)(retrying(path.read_bytes)())
    return len(files)


def _walk(root) -> Iterator:
    if not root.exists():
        return
    for path in root.iterdir():
        if path.is_dir():
            yield from _walk(path)
        else:
            yield path
