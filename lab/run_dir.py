"""The run directory, its one owner: `config.json`, `metrics.jsonl`, `evals.jsonl`,
`checkpoints/`, `result.json`. Every other module asks here for these paths and records.

A directory belongs to one config (by hash): re-running the same config resumes it, a
different config is refused instead of silently mixing two runs. `result.json` is written
last and atomically, so its presence means the run is finished; one that cannot be read (a
copy cut short, a disk that filled) marks the run `damaged`: unfinished, trained again.
Paths may be local or `gs://` (etils.epath): a run trains straight into a bucket (orbax
writes the checkpoints there through TensorStore; the JSONL logs, which an object store
cannot append to, are rewritten whole at each checkpoint, see lab.metrics).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from typing import Any

from lab.errors import ConfigError
from lab.run_config import RunConfig
from lab.run_status import RunStatus
from lab.runtime.atomic_io import as_path, is_remote, read_json, write_json_atomic

RESULT_FILE = "result.json"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
EVALS_FILE = "evals.jsonl"
CHECKPOINT_DIR = "checkpoints"

PathLike = str | os.PathLike


class DamagedRunError(ConfigError):
    """A run directory's record (config.json, result.json) is not valid JSON or not a config."""


def result_path(run: PathLike):
    return as_path(run) / RESULT_FILE


def config_path(run: PathLike):
    return as_path(run) / CONFIG_FILE


def metrics_path(run: PathLike):
    return as_path(run) / METRICS_FILE


def evals_path(run: PathLike):
    return as_path(run) / EVALS_FILE


def checkpoint_dir(run: PathLike):
    return as_path(run) / CHECKPOINT_DIR


def is_run_dir(run: PathLike) -> bool:
    return config_path(run).exists()


def read_result(run: PathLike) -> dict[str, Any] | None:
    """The finished run's record; None if there is none; DamagedRunError if unreadable."""
    path = result_path(run)
    if not path.exists():
        return None
    return _read_record(path, "a run's result")


def read_config(run: PathLike) -> RunConfig:
    """The config the run directory was created for (DamagedRunError if unreadable)."""
    path = config_path(run)
    if not path.exists():
        raise ConfigError(
            f"{as_path(run)} is not a run directory (no {CONFIG_FILE}); give the directory "
            "that `scaling-lab train --out` or a sweep (DIR/runs/<run_id>) wrote"
        )
    record = _read_record(path, "a run config")
    try:
        return RunConfig.from_dict(record)
    except (ConfigError, TypeError) as error:
        raise DamagedRunError(f"{path} is not a valid run config ({error})") from None


def read_status(run: PathLike) -> RunStatus:
    """done / diverged (result.json), damaged (unreadable result), started or new."""
    try:
        result = read_result(run)
    except DamagedRunError:
        return RunStatus.DAMAGED
    if result is not None:
        return RunStatus(result.get("status", RunStatus.DONE))
    return RunStatus.STARTED if is_run_dir(run) else RunStatus.NEW


def _read_record(path, what: str) -> dict[str, Any]:
    try:
        record = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DamagedRunError(
            f"{path} is damaged (not valid JSON: {error}); it should hold {what}"
        ) from None
    if not isinstance(record, dict):
        raise DamagedRunError(f"{path} is damaged (a JSON {type(record).__name__}, not {what})")
    return record


def run_path(out: PathLike):
    """The run directory as a path object: pathlib locally, epath for gs:// (never a local
    folder named `gs:`)."""
    return as_path(out)


def claim_run_dir(out: PathLike, config: RunConfig) -> dict[str, Any] | None:
    """Create or check `out` for `config`; the finished result if there is one."""
    out = as_path(out)
    out.mkdir(parents=True, exist_ok=True)
    if is_run_dir(out):
        try:
            recorded = read_config(out)
        except DamagedRunError as error:
            raise DamagedRunError(
                f"{error}; delete {out} to train the run from the start"
            ) from None
        if recorded.config_hash() != config.config_hash():
            raise ConfigError(
                f"{out} holds a run of a different config (hash {recorded.config_hash()}, "
                f"this one {config.config_hash()}); use another --out, or delete {out} "
                "to start over"
            )
    else:
        write_json_atomic(config_path(out), config.to_dict())
    try:
        return read_result(out)
    except DamagedRunError as error:
        warnings.warn(f"{error}; the run is treated as unfinished and trained again", stacklevel=2)
        return None


def build_result(
    config: RunConfig,
    *,
    evals: list[dict[str, Any]],
    steps_done: int,
    divergence: dict[str, Any] | None,
    epochs: float,
    timing: dict[str, float],
    throughput: dict[str, float],
    peak: tuple[float, str],
    provenance: dict[str, Any],
    true_entropy: float | None = None,
) -> dict[str, Any]:
    """The run's record: loss, N and D and C in every convention, timing, provenance.

    `true_entropy`: the corpus's entropy rate in nats/token when it is known (the synthetic
    corpus), the floor the fitted irreducible loss E is checked against.
    """
    model = config.model
    n_total, n_nonemb = model.num_params(), model.num_nonembedding_params()
    tokens = steps_done * config.tokens_per_step

    def compute(tokens: int) -> dict[str, float]:
        return {
            "C_6N": 6.0 * n_total * tokens,
            "C_6N_nonemb": 6.0 * n_nonemb * tokens,
            "C_detailed": model.flops_per_token("causal") * tokens,
            "C_full": model.flops_per_token("full") * tokens,
        }

    curve = [{**point, **compute(point["tokens"])} for point in evals]
    final = curve[-1]["loss"] if curve and curve[-1]["step"] == config.num_steps else None
    return {
        "status": RunStatus.DIVERGED if divergence else RunStatus.DONE,
        "divergence": divergence,
        "loss": final,
        "N": n_total,
        "N_nonemb": n_nonemb,
        "D": tokens,
        "D_requested": config.num_tokens,
        **compute(tokens),
        "steps": steps_done,
        "batch_size": config.train_batch_size,
        "ctx": model.ctx,
        "peak_lr": config.peak_lr,
        "epochs": epochs,
        "true_entropy": true_entropy,
        "eval_curve": curve,
        "timing": timing,
        "throughput": throughput,
        "peak_flops": peak[0],
        "peak_flops_source": peak[1],
        "provenance": provenance,
        "config": config.to_dict(),
    }


def write_result(out: PathLike, result: dict[str, Any]) -> None:
    write_json_atomic(result_path(out), result)


def remove_checkpoints(out: PathLike) -> None:
    if is_remote(out):
        folder = checkpoint_dir(out)
        if folder.exists():
            folder.rmtree()
        return
    shutil.rmtree(checkpoint_dir(out), ignore_errors=True)
