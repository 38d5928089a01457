"""The run directory: `config.json`, `metrics.jsonl`, `evals.jsonl`, `checkpoints/`, `result.json`.

A directory belongs to one config (by hash): re-running the same config resumes it, a
different config is refused instead of silently mixing two runs. `result.json` is written
last and atomically, so its presence means the run is finished.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from lab.errors import ConfigError
from lab.run_config import RunConfig
from lab.runtime.atomic_io import read_json, write_json_atomic

RESULT_FILE = "result.json"
CONFIG_FILE = "config.json"


def claim_run_dir(out: Path, config: RunConfig) -> dict[str, Any] | None:
    """Create or check `out` for `config`; the finished result if there is one."""
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / CONFIG_FILE
    if config_path.exists():
        recorded = RunConfig.from_dict(json.loads(config_path.read_text()))
        if recorded.config_hash() != config.config_hash():
            raise ConfigError(
                f"{out} holds a run of a different config (hash {recorded.config_hash()}, "
                f"this one {config.config_hash()}); use another --out, or delete {out} "
                "to start over"
            )
    else:
        write_json_atomic(config_path, config.to_dict())
    result_path = out / RESULT_FILE
    return read_json(result_path) if result_path.exists() else None


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
        "status": "diverged" if divergence else "done",
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


def write_result(out: Path, result: dict[str, Any]) -> None:
    write_json_atomic(out / RESULT_FILE, result)


def remove_checkpoints(out: Path) -> None:
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
