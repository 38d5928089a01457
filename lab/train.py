"""One training run, start to `result.json`: the API the sweep runner and `scaling-lab train` call.

The run trains exactly `config.num_tokens` tokens with a schedule that ends at its last step,
measures held-out loss at fixed FLOP fractions, checkpoints by steps and wall time, and can
be killed at any moment: the same call on the same directory resumes from the last
checkpoint and ends bitwise where an uninterrupted run ends (same machine). Steps are
grouped into chunks of up to `steps_per_call` (one jitted on-device loop); the chunking
depends only on the current step, so a resumed run replays the exact same calls.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from lab import run_dir, step_cache
from lab.checkpoint import RunCheckpoints
from lab.data import global_batch, global_batch_stack, load_corpus
from lab.errors import ConfigError
from lab.memory import check_fits, estimate_memory
from lab.metrics import JsonlLog, Progress, show_progress
from lab.optim import make_optimizer, schedule_arrays
from lab.run_config import RunConfig
from lab.runtime import compile_cache, provenance
from lab.runtime.device_peak import device_peak_flops
from lab.sharding import make_mesh


class RunInterrupted(RuntimeError):
    """Raised after a preemption signal once the checkpoint is safely written."""


def chunk_size(step: int, boundaries: list[int], steps_per_call: int) -> int:
    """Steps in the next jitted call from `step`: k, or fewer to end at the next boundary.

    Boundaries (eval and checkpoint steps) must be chunk ends. One compiled loop runs any
    chunk length up to k (lab.train_step), so a short chunk costs no extra compilation. A
    function of `step` alone, so resume replays the same chunks.
    """
    next_boundary = min(b for b in boundaries if b > step)
    return min(steps_per_call, next_boundary - step)


class _PreemptionFlag:
    """SIGTERM (a cloud TPU's preemption notice) asks the loop to checkpoint and stop."""

    def __init__(self) -> None:
        self.raised = False
        self._previous: Any = None

    def __enter__(self) -> _PreemptionFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.raised = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def train(
    config: RunConfig,
    out_dir: str | Path,
    *,
    progress: bool | None = None,
    compilation_cache: str | None = "default",
) -> dict[str, Any]:
    """Train (or resume, or just return) the run in `out_dir`; returns its result record."""
    started = time.perf_counter()
    out = Path(out_dir)
    finished = run_dir.claim_run_dir(out, config)
    if finished is not None:
        return finished
    compile_cache.enable(compilation_cache)

    corpus = load_corpus(config.data)
    if corpus.tokenizer.vocab_size > config.model.vocab_size:
        raise ConfigError(
            f"model.vocab_size={config.model.vocab_size} is smaller than the tokenizer's "
            f"{corpus.tokenizer.vocab_size} ids; set model.vocab_size = {corpus.tokenizer.vocab_size}"
        )
    mesh = make_mesh(config.mesh)
    check_fits(estimate_memory(config.model, config.mesh, config.train_batch_size))

    process, processes = jax.process_index(), jax.process_count()
    stream = corpus.train_stream(
        ctx=config.model.ctx,
        batch_size=config.train_batch_size,
        num_tokens=config.num_tokens,
        seed=config.seed,
        process_index=process,
        process_count=processes,
    )
    eval_rows = corpus.eval_batches(
        ctx=config.model.ctx, batch_size=config.eval_batch_size, num_batches=config.eval_batches
    )
    eval_set = global_batch_stack(_local_rows(eval_rows, process, processes), mesh)
    num_steps = config.num_steps
    optimizer_config = config.effective_optimizer()
    optimizer, _ = make_optimizer(optimizer_config, num_steps, config.model)
    fns = step_cache.run_functions(
        config.model, optimizer_config, optimizer, mesh, config.steps_per_call
    )
    schedule = schedule_arrays(optimizer_config, num_steps)
    state = fns.init_state(jax.random.key(config.seed), schedule)
    train_step, eval_fn = fns.train_step, fns.eval_stack

    checkpoints = RunCheckpoints(out / "checkpoints", max_to_keep=config.keep_checkpoints)
    is_writer = jax.process_index() == 0  # one process writes the logs and the result
    metrics = JsonlLog(out / "metrics.jsonl", writer=is_writer)
    evals = JsonlLog(out / "evals.jsonl", writer=is_writer)
    step, train_seconds = 0, 0.0
    if checkpoints.latest_step() is not None:
        state, host = checkpoints.restore(state)
        stream.restore(host["stream"])
        step, train_seconds = host["step"], host["train_seconds"]
    metrics.truncate_after(step)
    evals.truncate_after(step)

    flops_per_step = config.model.flops_per_token("causal") * config.tokens_per_step
    peak, peak_source = device_peak_flops(config.model.compute_dtype)
    if config.peak_flops:
        peak, peak_source = config.peak_flops, "config"
    elif jax.devices()[0].platform != "cpu":
        peak *= jax.device_count()  # CPU fake devices share one host's cores: one peak
    eval_steps = config.eval_steps()
    checkpoint_steps = _checkpoint_steps(config)
    boundaries = sorted(set(eval_steps) | checkpoint_steps)
    meter = _StepMeter(metrics, config, flops_per_step, peak)
    bar = Progress(num_steps, step, out.name, show_progress() if progress is None else progress)
    divergence: dict[str, Any] | None = None
    last_save = time.monotonic()
    eval_times: list[float] = []
    checkpoint_seconds = 0.0
    setup_seconds = time.perf_counter() - started

    with _PreemptionFlag() as preempted:
        while step < num_steps:
            k = chunk_size(step, boundaries, config.steps_per_call)
            if config.steps_per_call == 1:
                state, step_metrics = train_step(state, global_batch(stream.next_batch(), mesh))
            else:
                batches = _padded(stream.next_batches(k), config.steps_per_call)
                state, step_metrics = train_step(
                    state, global_batch_stack(batches, mesh), np.int32(k)
                )
            divergence = meter.record_previous()  # step n's numbers, read after n+1 dispatched
            meter.pending = (step, k, step_metrics)
            step += k
            save_due = (
                preempted.raised
                or step in checkpoint_steps
                or time.monotonic() - last_save >= config.checkpoint_every_seconds
                or (step == num_steps and config.keep_final_checkpoint)
            )
            pause = save_due or step in eval_steps
            if divergence is None and pause:
                divergence = meter.record_previous()  # logs complete up to a checkpoint
            if divergence is not None:
                break
            bar.update(k, meter.last_loss)
            if step in eval_steps:
                tic = time.perf_counter()
                evals.write(_evaluate(eval_fn, state.params, eval_set, step, config))
                eval_times.append(time.perf_counter() - tic)
            if save_due:
                tic = time.perf_counter()
                checkpoints.save(step, state, _host_state(stream, step, train_seconds, meter))
                checkpoint_seconds += time.perf_counter() - tic
                last_save = time.monotonic()
            if pause:
                meter.last_done = time.perf_counter()  # eval and saving are not step time
            if preempted.raised and step < num_steps:
                checkpoints.close()
                raise RunInterrupted(
                    f"preempted at step {step}/{num_steps}; checkpoint saved in {out}. "
                    "Run the same command again to resume."
                )
    bar.close()
    tic = time.perf_counter()
    checkpoints.close()  # waits for the async save
    checkpoint_seconds += time.perf_counter() - tic
    metrics.close()
    evals.close()
    result = run_dir.build_result(
        config,
        evals=evals.read(),
        steps_done=step,
        divergence=divergence,
        epochs=stream.epochs,
        timing={
            "setup_s": setup_seconds,
            "compile_and_first_steps_s": meter.compile_seconds,
            "first_calls_steps_s": meter.first_calls_step_seconds(),
            "train_steps_s": meter.train_seconds + train_seconds,
            "eval_s": sum(eval_times),
            "eval_compile_s": _first_call_excess(eval_times),
            "checkpoint_s": checkpoint_seconds,
            "total_s": time.perf_counter() - started,
        },
        throughput=meter.summary(),
        peak=(peak, peak_source),
        true_entropy=corpus.true_entropy,
        provenance=provenance.collect(
            config_hash=config.config_hash(),
            corpus_fingerprint=corpus.fingerprint,
            mesh_shape=dict(mesh.shape),
            seed=config.seed,
        ),
    )
    if not is_writer:
        return result
    run_dir.write_result(out, result)
    if not config.keep_final_checkpoint and result["status"] == "done":
        run_dir.remove_checkpoints(out)
    return result


def _first_call_excess(times: list[float]) -> float:
    """What the first of several equal calls cost beyond the median of the others (its
    compilation or cache load); 0 without a second call to compare with."""
    if len(times) < 2:
        return 0.0
    return max(0.0, times[0] - float(np.median(times[1:])))


def _checkpoint_steps(config: RunConfig) -> set[int]:
    every = config.checkpoint_every_steps
    return set(range(every, config.num_steps + 1, every)) if every else set()


def _padded(batches: np.ndarray, length: int) -> np.ndarray:
    """[k, B, T+1] -> [length, B, T+1]: a short chunk's stack, zero-filled (rows never read)."""
    if len(batches) == length:
        return batches
    padding = np.zeros((length - len(batches), *batches.shape[1:]), batches.dtype)
    return np.concatenate([batches, padding])


def _local_rows(batches: np.ndarray, process: int, processes: int) -> np.ndarray:
    """This process's rows of each [B, T] eval batch (the global batch is split by rows)."""
    rows = batches.shape[1] // processes
    return batches[:, process * rows : (process + 1) * rows]


def _evaluate(eval_fn, params, eval_set, step: int, config: RunConfig) -> dict[str, Any]:
    """Mean held-out loss over the fixed eval set (already on device), in one call."""
    loss_sum, tokens = jax.device_get(eval_fn(params, eval_set))
    return {
        "step": step,
        "tokens": step * config.tokens_per_step,
        "fraction": step / config.num_steps,
        "loss": float(loss_sum) / int(tokens),
    }


def _host_state(stream, step: int, train_seconds: float, meter: _StepMeter) -> dict[str, Any]:
    return {
        "stream": stream.state(),
        "step": step,
        "train_seconds": train_seconds + meter.train_seconds,
    }


class _StepMeter:
    """Turns each chunk's device metrics into JSONL lines, one per step, once they are ready."""

    def __init__(
        self,
        log: JsonlLog,
        config: RunConfig,
        flops_per_step: float,
        peak: float,
    ) -> None:
        self.log, self.config = log, config
        self.flops_per_step, self.peak = flops_per_step, peak
        self.pending: tuple[int, int, Any] | None = None
        self.last_done = time.perf_counter()
        self.compiled = False  # the first call compiles (or loads) the step
        self.train_seconds = 0.0
        self.compile_seconds = 0.0
        self.first_call_steps = 0  # steps trained inside the compiling first calls
        self.step_times: list[float] = []
        self.last_loss = math.nan
        self.limit = config.divergence_factor * math.log(config.model.vocab_size)
        self.warmup = config.effective_optimizer().warmup_for(config.num_steps)

    def record_previous(self) -> dict[str, Any] | None:
        """Write the pending chunk's lines; a divergence record if its loss blew up."""
        if self.pending is None:
            return None
        first_step, k, device_metrics = self.pending
        self.pending = None
        values = jax.device_get(device_metrics)
        now = time.perf_counter()
        seconds = (now - self.last_done) / k
        self.last_done = now
        if self.compiled:
            self.step_times.extend([seconds] * k)
            self.train_seconds += seconds * k
        else:  # the first call includes its compilation
            self.compiled = True
            self.compile_seconds += seconds * k
            self.first_call_steps += k
        losses = np.atleast_1d(values["loss"])
        grad_norms, lrs = np.atleast_1d(values["grad_norm"]), np.atleast_1d(values["lr"])
        for i in range(k):
            step = first_step + i + 1
            loss = float(losses[i])
            self.last_loss = loss
            self.log.write(self._line(step, loss, float(grad_norms[i]), float(lrs[i]), seconds))
            if not math.isfinite(loss):
                return {"step": step, "reason": f"loss is {loss} at step {step}"}
            if step > self.warmup and loss > self.limit:
                return {
                    "step": step,
                    "reason": f"loss {loss:.3f} exceeds {self.config.divergence_factor} x "
                    f"ln(vocab) = {self.limit:.3f} at step {step}, after warmup",
                }
        return None

    def _line(
        self, step: int, loss: float, grad_norm: float, lr: float, seconds: float
    ) -> dict[str, Any]:
        tokens = step * self.config.tokens_per_step
        achieved = self.flops_per_step / seconds
        return {
            "step": step,
            "tokens": tokens,
            "flops": step * self.flops_per_step,
            "loss": loss,
            "lr": lr,
            "grad_norm": grad_norm,
            "step_time_s": seconds,
            "tokens_per_s": self.config.tokens_per_step / seconds,
            "flops_per_s": achieved,
            "mfu": achieved / self.peak,
        }

    def first_calls_step_seconds(self) -> float:
        """What the steps inside the compiling first calls cost as training, at the median
        step time: `compile_and_first_steps_s` minus this is compilation alone."""
        return self.first_call_steps * float(np.median(self.step_times)) if self.step_times else 0.0

    def summary(self) -> dict[str, float]:
        if not self.step_times:
            return {}
        median = float(np.median(self.step_times))
        achieved = self.flops_per_step / median
        return {
            "median_step_time_s": median,
            "tokens_per_s": self.config.tokens_per_step / median,
            "flops_per_s": achieved,
            "mfu": achieved / self.peak,
        }
