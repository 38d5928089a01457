"""Checkpoint saves to a bucket: orbax writing straight to gs:// vs a local save + upload.

    python bench/gcs_checkpoint.py

Against the loopback GCS emulator of the tests (tests/gcs_emulator.py), for a train state of
each size: `direct` is RunCheckpoints(gs://...).save + wait (TensorStore writes the objects);
`staged` is the same save to a local directory, then every file of the step uploaded with
the fsspec/gcsfs copy the old staging path used (lab's pre-issue-18 `copy_tree`). Median of
5 saves each. The limit quoted next to them is the local save alone (what staging costs
before its upload), measured in the same run. A loopback emulator has no network latency
and a single-threaded server: it shows the overheads of the two paths, not a real bucket's
bandwidth. Writes bench/results/gcs_checkpoint.json.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import gcs_emulator  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from lab.checkpoint import RunCheckpoints  # noqa: E402
from lab.runtime.atomic_io import as_path  # noqa: E402

SIZES = {"13.5k params (a micro run)": 13_504, "4M params": 4_000_000}
REPEATS = 5


def _state(params: int) -> dict:
    rng = np.random.default_rng(0)
    weights = jnp.asarray(rng.standard_normal(params, dtype=np.float32))
    return {"params": weights, "mu": weights * 0.5, "nu": weights * 0.25}  # Adam-shaped


def _upload(local: Path, remote) -> int:
    files = [p for p in local.rglob("*") if p.is_file()]
    for path in files:
        target = remote / str(path.relative_to(local))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    return len(files)


REQUESTS = [0]


def _count_requests() -> None:
    """Count the HTTP requests the emulator serves (each one is a Python round trip there)."""
    from gcp_storage_emulator import server

    handle = server.Router.handle

    def counted(self, method):
        REQUESTS[0] += 1
        return handle(self, method)

    server.Router.handle = counted


def _timed_saves(directory, state, upload_to=None) -> list[float]:
    checkpoints = RunCheckpoints(directory, max_to_keep=REPEATS + 1)
    times = []
    for step in range(1, REPEATS + 1):
        tic = time.perf_counter()
        checkpoints.save(step, state, {"step": step})
        checkpoints.wait()
        if upload_to is not None:
            _upload(Path(directory) / str(step), as_path(f"{upload_to}/{step}"))
        times.append(time.perf_counter() - tic)
    checkpoints.close()
    return times


def main() -> None:
    rows = []
    _count_requests()
    with gcs_emulator.running_emulator() as url, gcs_emulator.emulator_environment(url):
        bucket = f"gs://{gcs_emulator.BUCKET}"
        for name, params in SIZES.items():
            state = _state(params)
            _timed_saves(f"{bucket}/warm/{params}", state)  # TensorStore and gcsfs warmed
            with tempfile.TemporaryDirectory() as local:
                only_local = _timed_saves(f"{local}/a", state)
                REQUESTS[0] = 0
                staged = _timed_saves(f"{local}/b", state, upload_to=f"{bucket}/staged/{params}")
                staged_requests = REQUESTS[0] / REPEATS
            REQUESTS[0] = 0
            direct = _timed_saves(f"{bucket}/direct/{params}", state)
            direct_requests = REQUESTS[0] / REPEATS
            row = {
                "state": name,
                "bytes": 3 * 4 * params,
                "local_save_s": statistics.median(only_local),
                "direct_s": statistics.median(direct),
                "staged_s": statistics.median(staged),
            }
            row["staged_over_direct"] = row["staged_s"] / row["direct_s"]
            row["requests_per_save"] = {"direct": direct_requests, "staged": staged_requests}
            rows.append(row)
            print(json.dumps(row))
    out = REPO / "bench" / "results" / "gcs_checkpoint.json"
    out.write_text(
        json.dumps(
            {
                "machine": f"{platform.node()} ({platform.processor() or platform.machine()}, "
                f"{os.cpu_count()} CPUs)",
                "server": "gcp-storage-emulator on 127.0.0.1 (single-threaded, in memory)",
                "repeats": REPEATS,
                "load_average_1m_at_end": os.getloadavg()[0],
                "note": "the emulator serves one request at a time in Python; direct saves "
                "make more, smaller requests (TensorStore's OCDBT), so it favours staging. "
                "Staging is not kept: it uploads only when a run ends, so a killed run "
                "resumed from nothing; no real bucket was reachable to measure.",
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
