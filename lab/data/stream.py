"""The training token stream: shuffled ctx+1 windows of the packed train tokens, exactly D tokens.

Windows: window w is tokens[w*ctx : w*ctx + ctx + 1] (stride ctx, so consecutive windows share
one token and every packed token is a target exactly once per epoch); inputs are its first ctx
tokens, targets its last ctx. A step takes `batch_size` windows and trains batch_size*ctx
tokens, so D = steps * batch_size * ctx exactly.

Order: global window slot g (step * batch_size + row) lies in epoch g // n_windows and takes
window perm_e[g % n_windows], perm_e a permutation seeded by (seed, e). A run longer than
one epoch continues into a freshly shuffled epoch; `epochs` records how many passes it needs.
Because the order is a pure function of g, a process computes only its own rows (multi-host),
the position is one integer (`state`), and a resumed stream continues bit-identically.
Plain numpy on a memory map: no grain, no threads; gathering a batch is one fancy index.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from lab.data.errors import DataError, DataWarning

STATE_VERSION = 1


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise DataError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _gather(tokens_N: np.ndarray, window_W: np.ndarray, ctx: int) -> np.ndarray:
    """int32 windows [*W.shape, ctx+1] of the packed tokens."""
    idx_WxT = window_W[..., None] * ctx + np.arange(ctx + 1)
    return tokens_N[idx_WxT].astype(np.int32)


class TokenStream:
    """This process's rows of a deterministic, resumable sequence of training batches."""

    def __init__(
        self,
        tokens_N: np.ndarray,
        *,
        ctx: int,
        batch_size: int,
        num_tokens: int,
        seed: int,
        process_index: int = 0,
        process_count: int = 1,
        max_epochs: float = 1.0,
        fingerprint: str = "",
    ) -> None:
        self.ctx = _check_int("ctx", ctx, 1)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.num_tokens = _check_int("num_tokens", num_tokens, 1)
        self.seed = _check_int("seed", seed, 0)
        self.process_count = _check_int("process_count", process_count, 1)
        self.process_index = _check_int("process_index", process_index, 0)
        if self.process_index >= self.process_count:
            raise DataError(
                f"process_index {process_index} must be < process_count {process_count}"
            )
        if self.batch_size % self.process_count:
            raise DataError(
                f"batch_size {batch_size} is not divisible by process_count {process_count}; "
                "every process feeds an equal slice of the global batch"
            )
        per_step = self.batch_size * self.ctx
        if self.num_tokens % per_step:
            lower = self.num_tokens // per_step * per_step
            options = [v for v in (lower, lower + per_step) if v > 0]
            raise DataError(
                f"num_tokens={num_tokens} is not a multiple of batch_size*ctx = {per_step}; "
                f"nearest valid values: {' or '.join(f'{v} ({v // per_step} steps)' for v in options)}"
            )
        self.n_windows = (int(tokens_N.shape[0]) - 1) // self.ctx
        if self.n_windows < 1:
            raise DataError(
                f"the training split has {tokens_N.shape[0]} tokens, fewer than one window of "
                f"ctx+1 = {self.ctx + 1}; use a smaller ctx or a bigger corpus"
            )
        self._tokens_N = tokens_N
        self.local_batch = self.batch_size // self.process_count
        self.steps = self.num_tokens // per_step
        self.epochs = self.steps * self.batch_size / self.n_windows
        self.unique_tokens = self.n_windows * self.ctx  # target tokens in one pass
        self.max_epochs = float(max_epochs)
        self.fingerprint = fingerprint
        self.over_max_epochs = self.epochs > self.max_epochs
        if self.over_max_epochs:
            warnings.warn(
                f"this run needs {self.epochs:.3g} passes over the {self.unique_tokens} unique "
                f"training tokens (more than max_epochs={self.max_epochs:g}); repeated data "
                "changes scaling, so use a bigger corpus or fewer tokens",
                DataWarning,
                stacklevel=3,  # the caller of Corpus.train_stream
            )
        self._step = 0
        self._perms: dict[int, np.ndarray] = {}

    @property
    def step(self) -> int:
        """Batches already taken (0..steps)."""
        return self._step

    def _perm(self, epoch: int) -> np.ndarray:
        perm = self._perms.get(epoch)
        if perm is None:
            if len(self._perms) >= 2:
                self._perms.pop(min(self._perms))
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n_windows)
            self._perms[epoch] = perm
        return perm

    def _windows(self, slot_G: np.ndarray) -> np.ndarray:
        """Window ids of global slots (same shape)."""
        epoch_G, pos_G = np.divmod(slot_G, self.n_windows)
        first, last = int(epoch_G.min()), int(epoch_G.max())
        if first == last:
            return self._perm(first)[pos_G]
        out_G = np.empty_like(slot_G)
        for epoch in range(first, last + 1):
            mask = epoch_G == epoch
            out_G[mask] = self._perm(epoch)[pos_G[mask]]
        return out_G

    def _read(self, window_W: np.ndarray) -> np.ndarray:
        """int32 [*W.shape, ctx+1] tokens of windows (overridden for shards on disk)."""
        return _gather(self._tokens_N, window_W, self.ctx)

    def _slots(self, steps_K: np.ndarray) -> np.ndarray:
        rows_R = self.process_index * self.local_batch + np.arange(self.local_batch)
        return steps_K[:, None] * self.batch_size + rows_R[None, :]

    def next_batches(self, k: int) -> np.ndarray:
        """int32 [k, local_batch, ctx+1]: the next k steps' rows of this process."""
        k = _check_int("k", k, 1)
        if self._step + k > self.steps:
            raise DataError(
                f"token stream exhausted: {k} more batch(es) requested at step {self._step} "
                f"of {self.steps} (num_tokens={self.num_tokens})"
            )
        slot_KxR = self._slots(np.arange(self._step, self._step + k, dtype=np.int64))
        batch = self._read(self._windows(slot_KxR))
        self._step += k
        return batch

    def next_batch(self) -> np.ndarray:
        """int32 [local_batch, ctx+1]: this process's rows of the next global batch."""
        return self.next_batches(1)[0]

    def __iter__(self) -> Iterator[np.ndarray]:
        while self._step < self.steps:
            yield self.next_batch()

    def __len__(self) -> int:
        return self.steps

    def state(self) -> dict[str, Any]:
        """JSON-serialisable position; independent of process layout (rows derive from it)."""
        return {
            "version": STATE_VERSION,
            "step": self._step,
            "seed": self.seed,
            "ctx": self.ctx,
            "batch_size": self.batch_size,
            "num_tokens": self.num_tokens,
            "fingerprint": self.fingerprint,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue exactly where `state` was taken; refuse a state of a different stream."""
        mine = self.state()
        for key in ("version", "seed", "ctx", "batch_size", "num_tokens", "fingerprint"):
            if state.get(key) != mine[key]:
                raise DataError(
                    f"cannot restore the token stream: saved {key}={state.get(key)!r} but this "
                    f"stream has {key}={mine[key]!r}; resume with the run's original data settings"
                )
        step = state.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= self.steps:
            raise DataError(f"saved stream step {step!r} is not in [0, {self.steps}]")
        self._step = step


def eval_windows(
    tokens_N: np.ndarray, *, ctx: int, batch_size: int, num_batches: int, seed: int
) -> np.ndarray:
    """int32 [num_batches, batch_size, ctx+1] held-out windows, a fixed sample seeded by eval_seed."""
    ctx = _check_int("ctx", ctx, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    num_batches = _check_int("num_batches", num_batches, 1)
    n_windows = (int(tokens_N.shape[0]) - 1) // ctx
    need = num_batches * batch_size
    if need > n_windows:
        raise DataError(
            f"the held-out split has {n_windows} windows of ctx+1 = {ctx + 1} tokens, fewer than "
            f"num_batches*batch_size = {need}; ask for at most {n_windows // batch_size} batch(es) "
            "or raise eval_fraction"
        )
    order = np.random.default_rng([seed, 0xE7A1]).permutation(n_windows)[:need]
    return _gather(tokens_N, order.reshape(num_batches, batch_size), ctx)
