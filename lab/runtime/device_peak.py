"""The device's peak FLOP/s: the denominator of MFU.

On GPU/TPU the datasheet dense peak is the standard denominator. On CPU there is no
datasheet number worth trusting, so the peak is *measured* (best jnp.dot throughput on
large square matrices) and cached per (device kind, dtype, cores, XLA flags); each run probes
briefly again and the cache keeps the best reading (a busy host reads low).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

# Dense peak FLOP/s per chip from vendor datasheets (no sparsity).
DATASHEET_PEAK_FLOPS: dict[str, dict[str, float]] = {
    "H100": {"bfloat16": 989e12, "float32": 67e12},  # SXM; tf32 tensor core would be 494e12
    "H200": {"bfloat16": 989e12, "float32": 67e12},
    "A100": {"bfloat16": 312e12, "float32": 19.5e12},
    "TPU v4": {"bfloat16": 275e12, "float32": 275e12 / 2},
    "TPU v5 lite": {"bfloat16": 197e12, "float32": 197e12 / 2},
    "TPU v5e": {"bfloat16": 197e12, "float32": 197e12 / 2},
    "TPU v5p": {"bfloat16": 459e12, "float32": 459e12 / 2},
    "TPU v6 lite": {"bfloat16": 918e12, "float32": 918e12 / 2},
}


def datasheet_peak(device_kind: str, dtype: str = "bfloat16") -> float | None:
    """Datasheet peak for a jax `device_kind` string, or None when unknown (e.g. CPU)."""
    for name, peaks in DATASHEET_PEAK_FLOPS.items():
        if name.lower() in device_kind.lower():
            return peaks.get(dtype)
    return None


def make_peak_probe(dtype: str, size: int, devices: list | None = None):
    """A compiled size x size matmul; the probe returns its best FLOP/s.

    With `devices` (several), every device multiplies its own pair at the same moment and the
    probe returns their summed FLOP/s: on CPU devices that share one host's cores, the peak of
    the whole machine as a data-parallel step uses it. Only this process's devices: in a
    multi-process run another host's device would compute nothing here.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = list(devices or jax.local_devices()[:1])
    sharding = NamedSharding(Mesh(np.array(devices), ("d",)), PartitionSpec("d"))
    a = jax.device_put(jnp.ones((len(devices), size, size), dtype), sharding)
    b = jax.device_put(jnp.full((len(devices), size, size), 0.5, dtype), sharding)
    matmul = jax.jit(lambda x, y: jnp.einsum("nij,njk->nik", x, y), out_shardings=sharding)
    matmul(a, b).block_until_ready()

    def probe(repeats: int) -> float:
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            matmul(a, b).block_until_ready()
            best = min(best, time.perf_counter() - start)
        return len(devices) * 2 * size**3 / best

    return probe


def measure_matmul_peak(dtype: str = "float32", size: int = 1024, repeats: int = 10) -> float:
    """Best achieved FLOP/s of one jitted square matmul on the default device."""
    return make_peak_probe(dtype, size)(repeats)


def _cache_file() -> Path:
    root = os.environ.get("SCALING_LAB_CACHE", os.path.expanduser("~/.cache/scaling-lab"))
    return Path(root) / "device_peak.json"


_rechecked: set[str] = set()  # cache keys this process has already probed


def device_peak_flops(dtype: str = "float32", recheck_repeats: int = 3) -> tuple[float, str]:
    """(peak FLOP/s of one device, where the number comes from: 'datasheet' or 'measured').

    On CPU a measurement taken while the host was busy reads low, and the first one would
    otherwise stand for every later run. So each process probes again briefly once
    (`recheck_repeats` matmuls, ~0.1 s; a sweep worker's later runs do not pay it) and the
    cache keeps the best reading: the peak only moves towards what the cores can really do,
    and a report can divide every run by the best one recorded.
    """
    import jax

    device = jax.devices()[0]
    listed = datasheet_peak(device.device_kind, dtype)
    if listed is not None and device.platform != "cpu":
        return listed, "datasheet"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    key = f"{device.device_kind}|{dtype}|cores={cores}|{os.environ.get('XLA_FLAGS', '')}"
    cache = _cache_file()
    try:
        table = json.loads(cache.read_text())
    except (OSError, ValueError):
        table = {}
    if key in table and key in _rechecked:
        return float(table[key]), "measured"
    _rechecked.add(key)
    repeats = recheck_repeats if key in table else 10
    reading = measure_matmul_peak(dtype, repeats=repeats) if repeats else 0.0
    if reading > table.get(key, 0.0):
        table[key] = reading
        from lab.runtime.atomic_io import write_json_atomic

        with contextlib.suppress(OSError):  # a read-only home is no reason to fail a run
            write_json_atomic(cache, table)
    return float(table[key]), "measured"
