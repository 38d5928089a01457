"""One training run, start to `result.json`: the API the sweep runner and `scaling-lab train` call.

The run trains exactly `config.num_tokens` tokens with a schedule that ends at its last step,
measures held-out loss at fixed FLOP fractions, checkpoints by steps and wall time, and can
be killed at any moment: the same call on the same directory resumes from the last
checkpoint and ends bitwise where an uninterrupted run ends (same machine). Steps are
grouped into chunks of up to `steps_per_call` (one jitted on-device loop); the chunking
depends only on the current step, so a resumed run replays the exact same calls.

`train` = `setup_run` (corpus, mesh, jitted functions, state restored from the last
checkpoint, logs cut back to it) + `train_loop` (steps, evals, checkpoints, preemption) +
`finish_run` (result.json). A full disk ends the run with a `DiskFullError` naming the path
and the free space; the last complete checkpoint stays, and the same call resumes bitwise.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from lab import run_dir, step_cache
from lab.checkpoint import RunCheckpoints
from lab.data import global_batch, global_batch_stack, load_corpus
from lab.errors import ConfigError
from lab.memory import check_fits, estimate_memory
from lab.metrics import JsonlLog, Progress, show_progress
from lab.optim import make_optimizer, schedule_arrays
from lab.preemption import SaveAgreement
from lab.run_config import RunConfig
from lab.run_status import RunStatus
from lab.runtime import compile_cache, provenance
from lab.runtime.device_peak import device_peak_flops
from lab.runtime.disk import disk_errors
from lab.sharding import batch_sharding, make_mesh
from lab.step_meter import StepMeter
from lab.tensorboard_log import TensorBoardLog


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


def train(
    config: RunConfig,
    out_dir: str | Path,
    *,
    progress: bool | None = None,
    compilation_cache: str | None = "default",
    devices: list[Any] | None = None,
) -> dict[str, Any]:
    """Train (or resume, or just return) the run in `out_dir`; returns its result record.

    `devices`: the run's mesh spans these (default: all), so several runs can share a host.
    """
    started = time.perf_counter()
    out = run_dir.run_path(out_dir)  # pathlib, or epath for gs://
    finished = run_dir.claim_run_dir(out, config)
    if finished is not None:
        return finished
    run = setup_run(config, out, compilation_cache=compilation_cache, devices=devices)
    setup_seconds = time.perf_counter() - started
    show = show_progress() if progress is None else progress
    with disk_errors(out):
        try:
            outcome = train_loop(run, progress=show)
            return finish_run(run, outcome, setup_seconds, time.perf_counter() - started)
        except BaseException:
            run.checkpoints.close_after_error()  # no save left running into the next attempt
            run.metrics.close()
            run.evals.close()
            run.board.close_after_error()
            raise


@dataclasses.dataclass
class Run:
    """What the loop needs, built once by `setup_run`: state, jitted functions, data, files."""

    config: RunConfig
    out: Path
    corpus: Any  # lab.data.Corpus
    mesh: Mesh
    stream: Any  # lab.data.TokenStream, at the restored position
    eval_set: jax.Array  # [n, B, T+1] held-out batches, on device
    functions: step_cache.RunFunctions
    state: Any  # TrainState, initialised or restored
    step: int  # steps done (restored from the checkpoint)
    earlier_evals: list[dict[str, Any]]  # evals.jsonl up to `step`: logged before a resume
    earlier_train_seconds: float  # step time of the processes before a resume
    checkpoints: RunCheckpoints
    metrics: JsonlLog
    evals: JsonlLog
    flops_per_step: float
    peak: tuple[float, str]  # FLOP/s and where the number comes from
    is_writer: bool  # process 0 writes the logs and the result
    board: TensorBoardLog  # the logs' scalars as TensorBoard events (process 0)


@dataclasses.dataclass
class LoopOutcome:
    step: int
    divergence: dict[str, Any] | None
    evals: list[dict[str, Any]]  # this process's evals (every process computes them)
    meter: StepMeter
    eval_times: list[float]
    checkpoint_seconds: float


def setup_run(
    config: RunConfig,
    out: Path,
    *,
    compilation_cache: str | None,
    devices: list[Any] | None = None,
) -> Run:
    """Check the config against the corpus and devices, build or restore the run's state."""
    compile_cache.enable(compilation_cache)
    corpus = load_corpus(config.data)
    if corpus.tokenizer.vocab_size > config.model.vocab_size:
        raise ConfigError(
            f"model.vocab_size={config.model.vocab_size} is smaller than the tokenizer's "
            f"{corpus.tokenizer.vocab_size} ids; set model.vocab_size = {corpus.tokenizer.vocab_size}"
        )
    mesh = make_mesh(config.mesh, devices)
    _check_batch_divides(config, mesh)
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
    optimizer_config = config.effective_optimizer()
    optimizer, _ = make_optimizer(optimizer_config, config.num_steps, config.model)
    functions = step_cache.run_functions(
        config.model, optimizer_config, optimizer, mesh, config.steps_per_call
    )
    schedule = schedule_arrays(optimizer_config, config.num_steps)
    state = functions.init_state(jax.random.key(config.seed), schedule)

    is_writer = process == 0
    checkpoints = RunCheckpoints(run_dir.checkpoint_dir(out), max_to_keep=config.keep_checkpoints)
    metrics = JsonlLog(run_dir.metrics_path(out), writer=is_writer)
    evals = JsonlLog(run_dir.evals_path(out), writer=is_writer)
    step, earlier_train_seconds = 0, 0.0
    if checkpoints.latest_step() is not None:
        state, host = checkpoints.restore(state)
        stream.restore(host["stream"])
        step, earlier_train_seconds = host["step"], host["train_seconds"]
    with disk_errors(out):
        metrics.truncate_after(step)
        evals.truncate_after(step)
    earlier_evals = [e for e in evals.read() if e["step"] <= step]  # other processes too
    return Run(
        config=config,
        out=out,
        corpus=corpus,
        mesh=mesh,
        stream=stream,
        eval_set=eval_set,
        functions=functions,
        state=state,
        step=step,
        earlier_evals=earlier_evals,
        earlier_train_seconds=earlier_train_seconds,
        checkpoints=checkpoints,
        metrics=metrics,
        evals=evals,
        flops_per_step=config.model.flops_per_token("causal") * config.tokens_per_step,
        peak=_peak(config, mesh),
        is_writer=is_writer,
        board=TensorBoardLog(out, resume_step=step, writer=is_writer),
    )


def train_loop(run: Run, *, progress: bool) -> LoopOutcome:
    """Train from `run.step` to the last step (or a divergence); checkpoint, evaluate, and
    on SIGTERM checkpoint and raise RunInterrupted."""
    config, stream, mesh = run.config, run.stream, run.mesh
    num_steps, state, step = config.num_steps, run.state, run.step
    train_step, eval_fn = run.functions.train_step, run.functions.eval_stack
    eval_steps = config.eval_steps()
    save_steps = checkpoint_steps(config)
    boundaries = sorted(set(eval_steps) | save_steps)
    meter = StepMeter(run.metrics, config, run.flops_per_step, run.peak[0], run.board)
    bar = Progress(num_steps, step, run.out.name, progress)
    divergence: dict[str, Any] | None = None
    eval_times: list[float] = []
    evals: list[dict[str, Any]] = []
    checkpoint_seconds = 0.0

    with SaveAgreement(config.checkpoint_every_seconds) as agreement:
        while step < num_steps:
            k = chunk_size(step, boundaries, config.steps_per_call)
            if config.steps_per_call == 1:
                state, step_metrics = train_step(state, global_batch(stream.next_batch(), mesh))
            else:
                batches = padded(stream.next_batches(k), config.steps_per_call)
                state, step_metrics = train_step(
                    state, global_batch_stack(batches, mesh), np.int32(k)
                )
            divergence = meter.flush()  # step n's numbers, read after n+1 dispatched
            meter.dispatched(step, k, step_metrics)
            step += k
            decided = agreement.decide()  # the same on every process: orbax saves collectively
            save_due = (
                decided.preempted
                or step in save_steps
                or decided.time_due
                or (step == num_steps and config.keep_final_checkpoint)
            )
            pause = save_due or step in eval_steps
            if divergence is None and pause:
                divergence = meter.flush()  # logs complete up to a checkpoint
            if divergence is not None:
                break
            bar.update(k, meter.last_loss)
            if step in eval_steps:
                tic = time.perf_counter()
                evals.append(evaluate(eval_fn, state.params, run.eval_set, step, config))
                run.evals.write(evals[-1])
                run.board.write_eval(evals[-1])
                eval_times.append(time.perf_counter() - tic)
            if save_due:
                tic = time.perf_counter()
                sync_logs(run)  # on gs://, the logs reach the bucket before the checkpoint
                host = host_state(stream, step, run.earlier_train_seconds, meter)
                run.checkpoints.save(step, state, host)
                run.board.flush()  # a resume purges the events after this step, not before
                checkpoint_seconds += time.perf_counter() - tic
                agreement.saved()
            if pause:
                meter.paused()  # eval and saving are not step time
            if decided.preempted and step < num_steps:
                run.checkpoints.close()
                raise RunInterrupted(
                    f"preempted at step {step}/{num_steps}; checkpoint saved in {run.out}. "
                    "Run the same command again to resume."
                )
    bar.close()
    return LoopOutcome(step, divergence, evals, meter, eval_times, checkpoint_seconds)


def finish_run(
    run: Run, outcome: LoopOutcome, setup_seconds: float, elapsed: float
) -> dict[str, Any]:
    """Wait for the last checkpoint, write result.json (process 0), drop the weights if asked."""
    tic = time.perf_counter()
    run.checkpoints.close()  # waits for the async save
    checkpoint_seconds = outcome.checkpoint_seconds + time.perf_counter() - tic
    run.metrics.close()
    run.evals.close()
    run.board.close()
    config, meter = run.config, outcome.meter
    result = run_dir.build_result(
        config,
        evals=run.earlier_evals + outcome.evals,  # not the file: process 0 may still write it
        steps_done=outcome.step,
        divergence=outcome.divergence,
        epochs=run.stream.epochs,
        timing={
            "setup_s": setup_seconds,
            **meter.timing(run.earlier_train_seconds),
            "eval_s": sum(outcome.eval_times),
            "eval_compile_s": _first_call_excess(outcome.eval_times),
            "checkpoint_s": checkpoint_seconds,
            "total_s": elapsed + time.perf_counter() - tic,
        },
        throughput=meter.summary(),
        peak=run.peak,
        true_entropy=run.corpus.true_entropy,
        provenance=provenance.collect(
            config_hash=config.config_hash(),
            corpus_fingerprint=run.corpus.fingerprint,
            mesh_shape=dict(run.mesh.shape),
            seed=config.seed,
        ),
    )
    if not run.is_writer:
        return result
    run_dir.write_result(run.out, result)
    if not config.keep_final_checkpoint and result["status"] == RunStatus.DONE:
        run_dir.remove_checkpoints(run.out)
    return result


def sync_logs(run: Run) -> None:
    """Store every log line written so far (a no-op locally, where lines are flushed as
    written; on gs:// one rewrite per log): a committed checkpoint then never lacks a line."""
    run.metrics.sync()
    run.evals.sync()


def _peak(config: RunConfig, mesh: Mesh) -> tuple[float, str]:
    """The FLOP/s MFU divides by, and its source (measured, datasheet or the config): the
    run's own devices' (a packed run on a sub-mesh counts only its slot's chips)."""
    if config.peak_flops:
        return config.peak_flops, "config"
    peak, source = device_peak_flops(config.model.compute_dtype)
    if mesh.devices.flat[0].platform != "cpu":
        peak *= mesh.size  # CPU fake devices share one host's cores: one peak
    return peak, source


def _check_batch_divides(config: RunConfig, mesh: Mesh) -> None:
    """The batch is split by rows over the mesh's batch axes: each must get whole rows."""
    sharding = batch_sharding(mesh)
    probe = math.prod(mesh.shape.values())  # divisible by every axis product
    ways = probe // sharding.shard_shape((probe, 1))[0]
    for name, size in (
        ("batch_size", config.train_batch_size),
        ("eval_batch_size", config.eval_batch_size),
    ):
        if size % ways:
            lower = size // ways * ways
            raise ConfigError(
                f"{name} {size} does not split over the {ways} devices the batch is sharded "
                f"across (mesh {dict(mesh.shape)}, {jax.device_count()} devices); use a "
                f"multiple of {ways}, e.g. {lower or ways} or {lower + ways}, or fewer devices "
                "(--cpu-devices)"
            )


def _first_call_excess(times: list[float]) -> float:
    """What the first of several equal calls cost beyond the median of the others (its
    compilation or cache load); 0 without a second call to compare with."""
    if len(times) < 2:
        return 0.0
    return max(0.0, times[0] - float(np.median(times[1:])))


def checkpoint_steps(config: RunConfig) -> set[int]:
    every = config.checkpoint_every_steps
    return set(range(every, config.num_steps + 1, every)) if every else set()


def padded(batches: np.ndarray, length: int) -> np.ndarray:
    """[k, B, T+1] -> [length, B, T+1]: a short chunk's stack, zero-filled (rows never read)."""
    if len(batches) == length:
        return batches
    padding = np.zeros((length - len(batches), *batches.shape[1:]), batches.dtype)
    return np.concatenate([batches, padding])


def _local_rows(batches: np.ndarray, process: int, processes: int) -> np.ndarray:
    """This process's rows of each [B, T] eval batch (the global batch is split by rows)."""
    rows = batches.shape[1] // processes
    return batches[:, process * rows : (process + 1) * rows]


def evaluate(eval_fn, params, eval_set, step: int, config: RunConfig) -> dict[str, Any]:
    """Mean held-out loss over the fixed eval set (already on device), in one call."""
    loss_sum, tokens = jax.device_get(eval_fn(params, eval_set))
    return {
        "step": step,
        "tokens": step * config.tokens_per_step,
        "fraction": step / config.num_steps,
        "loss": float(loss_sum) / int(tokens),
    }


def host_state(stream, step: int, train_seconds: float, meter: StepMeter) -> dict[str, Any]:
    return {
        "stream": stream.state(),
        "step": step,
        "train_seconds": train_seconds + meter.train_seconds,
    }
