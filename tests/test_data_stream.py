"""TokenStream: exactly D tokens, deterministic shuffles, epochs, save/restore, eval windows."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from lab.data import DataError, DataWarning, TokenStream
from lab.data.stream import eval_windows

CTX = 8


def _tokens(n: int = 8 * 50 + 1) -> np.ndarray:
    """Packed tokens whose value is their position: a window is known by its first token."""
    return np.arange(n, dtype=np.int64)


def _stream(**kw) -> TokenStream:
    args = {"ctx": CTX, "batch_size": 4, "num_tokens": 4 * CTX * 10, "seed": 0}
    args.update(kw)
    return TokenStream(_tokens(), **args)


def test_yields_exactly_num_tokens_of_contiguous_windows() -> None:
    stream = _stream(num_tokens=4 * CTX * 12)
    batches = list(stream)
    assert stream.steps == 12 and len(batches) == 12
    trained = sum(b.shape[0] * (b.shape[1] - 1) for b in batches)  # targets per batch: B * ctx
    assert trained == 4 * CTX * 12
    for batch in batches:
        assert batch.dtype == np.int32 and batch.shape == (4, CTX + 1)
        # each row is tokens[w*ctx : w*ctx + ctx + 1] of the packed stream
        assert np.all(batch[:, 0] % CTX == 0)
        assert np.array_equal(batch, batch[:, :1] + np.arange(CTX + 1))
    with pytest.raises(DataError, match="exhausted"):
        stream.next_batch()


def test_num_tokens_must_be_whole_steps_and_error_names_nearest() -> None:
    with pytest.raises(
        DataError, match=r"multiple of batch_size\*ctx = 32.*320 \(10 steps\) or 352"
    ):
        _stream(num_tokens=330)
    with pytest.raises(DataError, match="divisible by process_count"):
        _stream(batch_size=3, process_count=2)


def test_one_epoch_is_a_permutation_of_all_windows() -> None:
    n_windows = 50
    stream = _stream(batch_size=5, num_tokens=5 * CTX * 10)  # exactly one epoch
    assert stream.n_windows == n_windows and stream.epochs == pytest.approx(1.0)
    firsts = np.concatenate([b[:, 0] for b in stream]) // CTX
    assert sorted(firsts.tolist()) == list(range(n_windows))
    assert firsts.tolist() != list(range(n_windows))  # shuffled


def test_same_seed_same_batches_other_seed_differs() -> None:
    a, b, c = _stream(seed=3), _stream(seed=3), _stream(seed=4)
    batches_a, batches_b, batches_c = (np.stack(list(s)) for s in (a, b, c))
    assert np.array_equal(batches_a, batches_b)
    assert not np.array_equal(batches_a, batches_c)


def test_restore_after_k_batches_continues_identically() -> None:
    # 2.4 epochs: the restore point and the rest cross epoch boundaries
    reference = np.stack(list(_stream(seed=7, num_tokens=4 * CTX * 30, max_epochs=3)))
    first = _stream(seed=7, num_tokens=4 * CTX * 30, max_epochs=3)
    for _ in range(11):
        first.next_batch()
    saved = json.loads(json.dumps(first.state()))  # as stored in a checkpoint
    resumed = _stream(seed=7, num_tokens=4 * CTX * 30, max_epochs=3)
    resumed.restore(saved)
    assert resumed.step == 11
    assert np.array_equal(np.stack(list(resumed)), reference[11:])


def test_restore_refuses_another_streams_state() -> None:
    state = _stream(seed=1).state()
    with pytest.raises(DataError, match="seed"):
        _stream(seed=2).restore(state)
    with pytest.raises(DataError, match="step"):
        _stream(seed=1).restore({**state, "step": 10_000})


def test_next_batches_equals_repeated_next_batch() -> None:
    one, many = _stream(), _stream()
    expected = np.stack([one.next_batch() for _ in range(6)])
    got = np.concatenate([many.next_batches(4), many.next_batches(2)])
    assert got.shape == (6, 4, CTX + 1)
    assert np.array_equal(got, expected)
    with pytest.raises(DataError, match="exhausted"):
        many.next_batches(5)


def test_more_than_one_epoch_reshuffles_and_warns() -> None:
    with pytest.warns(DataWarning, match="passes"):
        stream = _stream(batch_size=5, num_tokens=5 * CTX * 25, max_epochs=2.0)  # 2.5 epochs
    assert stream.epochs == pytest.approx(2.5) and stream.over_max_epochs
    firsts = np.concatenate([b[:, 0] for b in stream]) // CTX
    epoch0, epoch1 = firsts[:50], firsts[50:100]
    assert sorted(epoch1.tolist()) == list(range(50))  # every window again
    assert not np.array_equal(epoch0, epoch1)  # in a new order
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not _stream(batch_size=5, num_tokens=5 * CTX * 10, max_epochs=1.0).over_max_epochs


def test_eval_windows_fixed_and_bounded() -> None:
    tokens = _tokens()
    a = eval_windows(tokens, ctx=CTX, batch_size=4, num_batches=3, seed=0)
    b = eval_windows(tokens, ctx=CTX, batch_size=4, num_batches=3, seed=0)
    assert a.shape == (3, 4, CTX + 1) and a.dtype == np.int32
    assert np.array_equal(a, b)
    assert len(set(a[..., 0].ravel().tolist())) == 12  # distinct windows
    with pytest.raises(DataError, match="at most 12 batch"):
        eval_windows(tokens, ctx=CTX, batch_size=4, num_batches=13, seed=0)
