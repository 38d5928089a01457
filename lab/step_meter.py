"""Per-step numbers of a run: each chunk's device metrics become JSONL lines once ready.

The loop dispatches chunk n+1 before reading chunk n's metrics (`dispatched`, then `flush`),
so the host never waits for the device to report a loss. Wall time between reads is step
time, except the first call (compilation) and the pauses for evals and checkpoints, which
the loop declares with `paused`. Divergence (a non-finite loss, or one above
`divergence_factor x ln(vocab)` after warmup) is detected here, step by step.
"""

from __future__ import annotations

import math
import time
from typing import Any

import jax
import numpy as np

from lab.metrics import JsonlLog
from lab.run_config import RunConfig
from lab.tensorboard_log import TensorBoardLog


class StepMeter:
    """Writes one metrics line per step and keeps the run's step times."""

    def __init__(
        self,
        log: JsonlLog,
        config: RunConfig,
        flops_per_step: float,
        peak: float,
        board: TensorBoardLog | None = None,
    ):
        self._log, self._config, self._board = log, config, board
        self._flops_per_step, self._peak = flops_per_step, peak
        self._pending: tuple[int, int, Any] | None = None
        self._last_done = time.perf_counter()
        self._compiled = False  # the first call compiles (or loads) the step
        self._train_seconds = 0.0
        self._compile_seconds = 0.0
        self._first_call_steps = 0  # steps trained inside the compiling first calls
        self._step_times: list[float] = []
        self._last_loss = math.nan
        self._limit = config.divergence_factor * math.log(config.model.vocab_size)
        self._warmup = config.effective_optimizer().warmup_for(config.num_steps)

    @property
    def last_loss(self) -> float:
        """The loss of the latest step written (NaN before the first)."""
        return self._last_loss

    @property
    def train_seconds(self) -> float:
        """Step time measured in this process (the compiling first call excluded)."""
        return self._train_seconds

    def dispatched(self, first_step: int, k: int, device_metrics: Any) -> None:
        """Chunk of `k` steps after `first_step` was dispatched; its metrics are read later."""
        self._pending = (first_step, k, device_metrics)

    def paused(self) -> None:
        """Evals or a checkpoint ran since the last read: that time is not step time."""
        self._last_done = time.perf_counter()

    def flush(self) -> dict[str, Any] | None:
        """Write the pending chunk's lines; a divergence record if its loss blew up."""
        if self._pending is None:
            return None
        first_step, k, device_metrics = self._pending
        self._pending = None
        values = jax.device_get(device_metrics)
        now = time.perf_counter()
        seconds = (now - self._last_done) / k
        self._last_done = now
        if self._compiled:
            self._step_times.extend([seconds] * k)
            self._train_seconds += seconds * k
        else:  # the first call includes its compilation
            self._compiled = True
            self._compile_seconds += seconds * k
            self._first_call_steps += k
        losses = np.atleast_1d(values["loss"])
        grad_norms, lrs = np.atleast_1d(values["grad_norm"]), np.atleast_1d(values["lr"])
        for i in range(k):
            step = first_step + i + 1
            loss = float(losses[i])
            self._last_loss = loss
            line = self._line(step, loss, float(grad_norms[i]), float(lrs[i]), seconds)
            self._log.write(line)
            if self._board is not None:
                self._board.write_step(line)
            divergence = self._divergence(step, loss)
            if divergence is not None:
                return divergence
        return None

    def _divergence(self, step: int, loss: float) -> dict[str, Any] | None:
        if not math.isfinite(loss):
            return {"step": step, "reason": f"loss is {loss} at step {step}"}
        if step > self._warmup and loss > self._limit:
            return {
                "step": step,
                "reason": f"loss {loss:.3f} exceeds {self._config.divergence_factor} x "
                f"ln(vocab) = {self._limit:.3f} at step {step}, after warmup",
            }
        return None

    def _line(
        self, step: int, loss: float, grad_norm: float, lr: float, seconds: float
    ) -> dict[str, Any]:
        tokens = step * self._config.tokens_per_step
        achieved = self._flops_per_step / seconds
        return {
            "step": step,
            "tokens": tokens,
            "flops": step * self._flops_per_step,
            "loss": loss,
            "lr": lr,
            "grad_norm": grad_norm,
            "step_time_s": seconds,
            "tokens_per_s": self._config.tokens_per_step / seconds,
            "flops_per_s": achieved,
            "mfu": achieved / self._peak,
        }

    def timing(self, earlier_train_seconds: float = 0.0) -> dict[str, float]:
        """The step part of result.json's `timing` (`earlier_train_seconds`: before a resume).

        `first_calls_steps_s` is what the steps inside the compiling first calls cost as
        training, at the median step time: `compile_and_first_steps_s` minus it is
        compilation alone.
        """
        median = float(np.median(self._step_times)) if self._step_times else 0.0
        return {
            "compile_and_first_steps_s": self._compile_seconds,
            "first_calls_steps_s": self._first_call_steps * median,
            "train_steps_s": self._train_seconds + earlier_train_seconds,
        }

    def summary(self) -> dict[str, float]:
        """Median step time, tokens/s, FLOP/s and MFU (empty before two calls)."""
        if not self._step_times:
            return {}
        median = float(np.median(self._step_times))
        achieved = self._flops_per_step / median
        return {
            "median_step_time_s": median,
            "tokens_per_s": self._config.tokens_per_step / median,
            "flops_per_s": achieved,
            "mfu": achieved / self._peak,
        }
