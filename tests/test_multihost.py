"""Multi-host: one run as 2 processes x 4 CPU devices (jax.distributed, gloo, coordinator on
127.0.0.1) gives the same per-step losses and final eval loss as 1 process x 8 devices.

Both go through `scaling-lab train`, the command every host of a TPU pod slice runs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent

CONFIG = """\
num_tokens = 4096        # 32 steps of batch 8 x ctx 16
batch_size = 8
steps_per_call = 4
seed = 3
eval_batches = 2
eval_batch_size = 8
eval_fractions = [0.5, 1.0]
keep_final_checkpoint = false

[model]
n_layers = 2
d_model = 32
n_heads = 2
d_ff = 128
vocab_size = 16
ctx = 16

[data]
corpus = "synthetic"
eval_fraction = 0.1
synthetic = { states = 13, fanout = 4, n_docs = 400, doc_len = 32 }

[mesh]
data = -1
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    return env


def train_command(config: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "experiments.main",
        "train",
        "--config",
        str(config),
        "--out",
        str(out),
        *extra,
    ]


def run_two_processes(
    command: list[str], timeout: float, extra_env: dict[str, str] | None = None
) -> list[subprocess.CompletedProcess]:
    """`command` as processes 0 and 1 of a 2 x 4-CPU-device jax.distributed job."""
    port = free_port()
    processes = [
        subprocess.Popen(
            [
                *command,
                "--coordinator",
                f"127.0.0.1:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
                "--local-devices",
                "4",
            ],
            cwd=REPO,
            env={**base_env(), **(extra_env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=timeout)[0] for p in processes]
    return [
        subprocess.CompletedProcess(p.args, p.returncode, out)
        for p, out in zip(processes, outputs, strict=True)
    ]


def losses(out: Path) -> tuple[np.ndarray, float, int]:
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    result = json.loads((out / "result.json").read_text())
    return (
        np.array([s["loss"] for s in steps]),
        result["loss"],
        result["provenance"]["device_count"],
    )


def test_two_processes_of_four_devices_match_one_of_eight(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    single = tmp_path / "single"
    env = {**base_env(), "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    subprocess.run(
        train_command(config, single), cwd=REPO, env=env, check=True, capture_output=True
    )

    multi = tmp_path / "multi"
    peak_cache = tmp_path / "peak_cache"
    processes = run_two_processes(
        train_command(config, multi), timeout=180, extra_env={"SCALING_LAB_CACHE": str(peak_cache)}
    )
    for process in processes:
        assert process.returncode == 0, process.stdout[-3000:]
    # Each process probes the matmul peak on its own devices; a probe that computed nothing
    # would read absurdly fast and stand in the cache for every later run.
    readings = json.loads((peak_cache / "device_peak.json").read_text()).values()
    assert all(1e8 < r < 1e14 for r in readings), readings

    single_steps, single_final, single_devices = losses(single)
    multi_steps, multi_final, multi_devices = losses(multi)
    assert single_devices == multi_devices == 8
    assert len(single_steps) == len(multi_steps) == 32
    np.testing.assert_allclose(multi_steps, single_steps, rtol=1e-5)
    np.testing.assert_allclose(multi_final, single_final, rtol=1e-5)


SWEEP = """\
[sweep]
budgets_flops = [3e8]
d_models = [16, 32]
tokens_per_param_guess = 20
min_steps = 20
max_epochs = 20.0

[run]
batch_size = 8
eval_batches = 1
eval_batch_size = 8
eval_fractions = [0.5, 1.0]
keep_final_checkpoint = false

[model]
ctx = 16

[data]
corpus = "synthetic"
eval_fraction = 0.1
synthetic = { states = 13, fanout = 4, n_docs = 400, doc_len = 32 }

[mesh]
data = -1
"""


@pytest.mark.slow
def test_a_sweep_over_two_processes_trains_each_run_once_on_all_devices(tmp_path: Path) -> None:
    """`sweep run --coordinator ...` on each process: process 0 claims, both train every run."""
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(SWEEP)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "experiments.main", "sweep", "run", str(sweep), "--out"]
    first, second = run_two_processes([*command, str(out), "--no-progress"], timeout=300)
    outputs = [first.stdout, second.stdout]
    assert first.returncode == second.returncode == 0, outputs[0][-2000:] + outputs[1][-2000:]
    finished = [line for line in outputs[0].splitlines() if line.startswith("[w0]")]
    assert len(finished) == 2 and not any(line.startswith("[w") for line in outputs[1].splitlines())
    for result in out.glob("runs/*/result.json"):
        record = json.loads(result.read_text())
        assert record["status"] == "done"
        assert record["provenance"]["process_count"] == 2
        assert record["provenance"]["device_count"] == 8
