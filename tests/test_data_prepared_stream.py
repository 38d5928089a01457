"""Training windows from prepared shards: the reference's windows, exact resume, per-host rows, training."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_data_prepare import reference, write_docs

from lab.data import DataConfig, DataWarning, load_corpus
from lab.data.prepare import PrepareOptions, prepare
from lab.data.prepared import window_order

CTX, BATCH = 16, 8


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[DataConfig, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("prepared")
    paths = write_docs(root / "docs", n=30, seed=3)
    options = PrepareOptions(
        corpus=f"text:{root / 'docs'}", out=str(root / "p"), eval_fraction=0.2, shards=4
    )
    prepare(options)
    config = DataConfig(corpus=f"prepared:{root / 'p'}", eval_fraction=0.2, max_epochs=100)
    return config, reference(paths, 0.2, 0)


def _stream(config: DataConfig, steps: int, **kw):
    corpus = load_corpus(config)
    args = {"ctx": CTX, "batch_size": BATCH, "num_tokens": steps * BATCH * CTX, "seed": 4}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # tests run several epochs
        return corpus.train_stream(**{**args, **kw})


def test_one_epoch_reads_every_window_of_the_reference_once(prepared) -> None:
    config, expected = prepared
    train = expected["train"]
    n_windows = (train.size - 1) // CTX
    ref_windows = train[np.arange(n_windows)[:, None] * CTX + np.arange(CTX + 1)]
    steps = n_windows // BATCH
    rows = np.concatenate(list(_stream(config, steps)))
    assert rows.shape == (steps * BATCH, CTX + 1) and rows.dtype == np.int32
    # slot g reads window order[g]: a permutation of all windows per epoch, reshuffled each epoch
    order = window_order(n_windows, 4, "train")
    picked = np.asarray([order[g] for g in range(2 * n_windows)])
    assert sorted(picked[:n_windows]) == list(range(n_windows))
    assert sorted(picked[n_windows:]) == list(range(n_windows))
    assert list(picked[:n_windows]) != list(range(n_windows))
    assert list(picked[:n_windows]) != list(picked[n_windows:])
    # and the rows are exactly those windows of the naive packing
    assert np.array_equal(rows, ref_windows[picked[: steps * BATCH]])


def test_resumed_stream_continues_exactly(prepared) -> None:
    config, _ = prepared
    steps = 3 * ((prepared[1]["train"].size - 1) // CTX) // BATCH  # about 3 epochs
    uninterrupted = np.stack(list(_stream(config, steps)))
    first = _stream(config, steps)
    for _ in range(steps // 2 + 1):  # stop mid-epoch
        first.next_batch()
    state = json.loads(json.dumps(first.state()))
    resumed = _stream(config, steps)
    resumed.restore(state)
    assert np.array_equal(np.stack(list(resumed)), uninterrupted[steps // 2 + 1 :])
    assert not np.array_equal(uninterrupted, np.stack(list(_stream(config, steps, seed=5))))


def test_per_host_slices_equal_rows_of_the_single_host_batch(prepared) -> None:
    config, _ = prepared
    single = np.stack(list(_stream(config, 12)))
    for count in (2, 4):
        for index in range(count):
            mine = np.stack(list(_stream(config, 12, process_index=index, process_count=count)))
            rows = slice(index * BATCH // count, (index + 1) * BATCH // count)
            assert np.array_equal(mine, single[:, rows])


def test_eval_batches_are_fixed_windows_of_the_held_out_split(prepared) -> None:
    config, expected = prepared
    corpus = load_corpus(config)
    a = corpus.eval_batches(ctx=CTX, batch_size=4, num_batches=3)
    b = load_corpus(config).eval_batches(ctx=CTX, batch_size=4, num_batches=3)
    assert a.shape == (3, 4, CTX + 1) and np.array_equal(a, b)
    held_out = expected["eval"]
    n_windows = (held_out.size - 1) // CTX
    windows = {held_out[w * CTX : w * CTX + CTX + 1].tobytes() for w in range(n_windows)}
    assert all(row.astype(np.int64).tobytes() in windows for row in a.reshape(-1, CTX + 1))
    assert len({row.tobytes() for row in a.reshape(-1, CTX + 1)}) == 12


def test_a_run_trains_on_a_prepared_corpus(prepared, tmp_path: Path) -> None:
    from lab.config import MeshConfig, ModelConfig, OptimizerConfig
    from lab.run_config import RunConfig
    from lab.train import train

    config, _ = prepared
    model = ModelConfig(n_layers=1, d_model=32, n_heads=2, d_ff=128, vocab_size=259, ctx=32)
    run = RunConfig(
        model=model,
        num_tokens=8 * 8 * 32,
        batch_size=8,
        optimizer=OptimizerConfig(peak_lr=1e-2, warmup_steps=2),
        mesh=MeshConfig(data=-1),
        data=config,
        eval_fractions=(0.5, 1.0),
        eval_batches=2,
        eval_batch_size=8,
    )
    result = train(run, tmp_path / "run", progress=False)
    assert result["status"] == "done" and result["steps"] == 8
    recorded = json.dumps(result)
    assert load_corpus(config).fingerprint in recorded


def test_a_two_process_checkpoint_resumes_on_one_process(prepared) -> None:
    config, _ = prepared
    single = np.stack(list(_stream(config, 12)))
    procs = [_stream(config, 12, process_index=p, process_count=2) for p in range(2)]
    stacked = np.concatenate([s.next_batches(5) for s in procs], axis=1)
    assert np.array_equal(stacked, single[:5])
    resumed = _stream(config, 12)
    resumed.restore(json.loads(json.dumps(procs[1].state())))
    assert np.array_equal(np.stack(list(resumed)), single[5:])


WORKER = """
import sys
import jax
import numpy as np

pid, port, corpus = int(sys.argv[1]), sys.argv[2], sys.argv[3]
jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=pid)
from jax.experimental import multihost_utils
from jax.sharding import AxisType

from lab.data import DataConfig, global_batch, load_corpus

data = load_corpus(DataConfig(corpus=corpus, eval_fraction=0.2))
kw = dict(ctx=16, batch_size=8, num_tokens=8 * 16 * 3, seed=5)
local = data.train_stream(process_index=pid, process_count=2, **kw).next_batches(3)
expected = data.train_stream(**kw).next_batches(3)
mesh = jax.make_mesh((4, 2, 1), ("data", "fsdp", "tensor"), axis_types=(AxisType.Auto,) * 3)
for step in range(3):
    full = multihost_utils.process_allgather(global_batch(local[step], mesh), tiled=True)
    assert np.array_equal(np.asarray(full), expected[step]), step
print("OK", pid)
"""


def test_two_real_processes_read_their_rows_of_the_global_batch(prepared, tmp_path: Path) -> None:
    """jax.distributed, 2 processes x 4 CPU devices, each reading only its rows from the shards."""
    import os
    import socket
    import subprocess
    import sys

    config, _ = prepared
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    repo = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu", "PYTHONPATH": repo}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(i), port, config.corpus],
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
