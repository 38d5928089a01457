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
