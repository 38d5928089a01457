"""Per-process slices of the global batch, and global arrays on an 8-device mesh."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lab.data import TokenStream

CTX, BATCH = 16, 8


def _stream(tokens: np.ndarray, process_index: int = 0, process_count: int = 1) -> TokenStream:
    return TokenStream(
        tokens,
        ctx=CTX,
        batch_size=BATCH,
        num_tokens=BATCH * CTX * 12,
        seed=5,
        process_index=process_index,
        process_count=process_count,
        max_epochs=10,
    )


@pytest.fixture(scope="module")
def tokens() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 259, size=CTX * 40 + 1).astype(np.uint16)


@pytest.mark.parametrize("process_count", [2, 4])
def test_union_of_process_slices_is_the_global_batch(
    tokens: np.ndarray, process_count: int
) -> None:
    single = np.stack(list(_stream(tokens)))
    procs = [_stream(tokens, p, process_count) for p in range(process_count)]
    assert all(s.local_batch == BATCH // process_count for s in procs)
    for step in range(single.shape[0]):
        rows = np.concatenate([s.next_batch() for s in procs])  # process order = row order
        assert np.array_equal(rows, single[step])


def test_slices_of_stacked_steps_and_restore_across_layouts(tokens: np.ndarray) -> None:
    single = np.stack(list(_stream(tokens)))
    procs = [_stream(tokens, p, 2) for p in range(2)]
    stacked = np.concatenate([s.next_batches(3) for s in procs], axis=1)
    assert np.array_equal(stacked, single[:3])
    # a checkpoint taken with 2 processes resumes on 1 process at the same global position
    resumed = _stream(tokens)
    resumed.restore(procs[0].state())
    assert np.array_equal(np.stack(list(resumed)), single[3:])


def test_global_batch_on_8_device_mesh(tokens: np.ndarray) -> None:
    jax = pytest.importorskip("jax")
    from jax.sharding import AxisType

    from lab.data import global_batch, global_batch_stack

    if jax.device_count() < 8:
        pytest.skip("needs 8 (fake) devices")
    mesh = jax.make_mesh((4, 2, 1), ("data", "fsdp", "tensor"), axis_types=(AxisType.Auto,) * 3)
    stream = _stream(tokens)
    local = stream.next_batch()
    array = global_batch(local, mesh)
    assert array.shape == (BATCH, CTX + 1) and array.dtype == np.int32
    assert np.array_equal(np.asarray(array), local)
    shards = array.addressable_shards
    assert len(shards) == 8 and {s.data.shape for s in shards} == {(1, CTX + 1)}
    for shard in shards:  # each device holds its own row, not a replica
        assert np.array_equal(np.asarray(shard.data), local[shard.index])
    locals_k = stream.next_batches(2)
    stacked = global_batch_stack(locals_k, mesh)
    assert stacked.shape == (2, BATCH, CTX + 1)
    assert np.array_equal(np.asarray(stacked), locals_k)
    assert {s.data.shape for s in stacked.addressable_shards} == {(2, 1, CTX + 1)}


WORKER = """
import sys
import jax
import numpy as np

pid, port = int(sys.argv[1]), sys.argv[2]
jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=pid)
from jax.experimental import multihost_utils
from jax.sharding import AxisType

from lab.data import TokenStream, global_batch

tokens = np.random.default_rng(0).integers(0, 259, size=16 * 40 + 1).astype(np.uint16)
kw = dict(ctx=16, batch_size=8, num_tokens=8 * 16 * 3, seed=5, max_epochs=10)
local = TokenStream(tokens, process_index=pid, process_count=2, **kw).next_batch()
expected = TokenStream(tokens, **kw).next_batch()
mesh = jax.make_mesh((4, 2, 1), ("data", "fsdp", "tensor"), axis_types=(AxisType.Auto,) * 3)
array = global_batch(local, mesh)
assert array.shape == expected.shape, array.shape
total = int(jax.jit(lambda x: x.astype(np.int64).sum())(array))
full = multihost_utils.process_allgather(array, tiled=True)
assert np.array_equal(np.asarray(full), expected)
assert total == int(expected.astype(np.int64).sum())
print("OK", pid, total)
"""


def test_two_real_processes_build_the_global_batch(tmp_path: Path) -> None:
    """jax.distributed with 2 local processes x 4 CPU devices: each feeds only its rows."""
    pytest.importorskip("jax")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(i), port],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    outs = []
    for proc in procs:
        try:
            outs.append(proc.communicate(timeout=120)[0])
        finally:
            proc.kill()
    for i, (proc, out) in enumerate(zip(procs, outs, strict=True)):
        assert proc.returncode == 0, out[-3000:]
        assert f"OK {i}" in out
