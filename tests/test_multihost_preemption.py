"""Multi-host checkpoint decisions are agreed: 2 processes x 4 CPU devices (jax.distributed,
gloo), as `scaling-lab train` runs on each host of a TPU slice.

SIGTERM to one process only: both save the same step and exit 75, and the resume (both
processes again) ends bitwise where an uninterrupted 2-process run ends. Unequal clocks: the
time-based saves one process asks for are made by both (orbax's save is collective: a save
made by one process alone would hang the run).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from test_multihost import REPO, base_env, free_port, train_command

from lab.preemption import CLOCK_SPEED_ENV

CONFIG = """\
num_tokens = {tokens}
batch_size = 8
steps_per_call = 4
seed = 5
eval_batches = 2
eval_batch_size = 8
eval_fractions = [0.5, 1.0]
checkpoint_every_steps = {every_steps}
checkpoint_every_seconds = 3600
keep_checkpoints = {keep}

[model]
n_layers = 1
d_model = 32
n_heads = 2
d_ff = 64
vocab_size = 16
ctx = 16

[data]
corpus = "synthetic"
eval_fraction = 0.1
synthetic = {{ states = 13, fanout = 4, n_docs = 400, doc_len = 32 }}

[mesh]
data = -1
"""
TOKENS_PER_STEP = 8 * 16


def start_two(command: list[str], envs: tuple[dict, dict] = ({}, {})) -> list[subprocess.Popen]:
    """`command` as processes 0 and 1 of a 2 x 4-CPU-device jax.distributed job."""
    port = free_port()
    job = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--local-devices", "4"]
    return [
        subprocess.Popen(
            [*command, *job, "--process-id", str(i)],
            cwd=REPO,
            env={**base_env(), "SCALING_LAB_QUIET": "1", **envs[i]},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]


def finish(processes: list[subprocess.Popen], timeout: float = 240) -> list[tuple[int, str]]:
    """Exit codes and outputs; a job still running after `timeout` (hung) is killed."""
    try:
        outputs = [p.communicate(timeout=timeout)[0] for p in processes]
    except subprocess.TimeoutExpired:
        for p in processes:
            p.kill()
        raise
    return [(p.returncode, out) for p, out in zip(processes, outputs, strict=True)]


def saved_steps(run: Path) -> list[int]:
    """Committed checkpoints (orbax writes into "<step>.orbax-checkpoint-tmp" first)."""
    folder = run / "checkpoints"
    return sorted(int(p.name) for p in folder.glob("[0-9]*") if p.name.isdigit())


def wait_for_checkpoint(run: Path, processes: list[subprocess.Popen], beyond: int) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if [s for s in saved_steps(run) if s > beyond]:
            return
        if any(p.poll() is not None for p in processes):
            raise AssertionError(f"ended before it could be interrupted: {finish(processes)}")
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def final_params(run: Path) -> dict[str, np.ndarray]:
    """The last checkpoint's params as numpy (saved over 2 processes, read by this one)."""
    import jax
    import orbax.checkpoint as ocp

    folder = (run / "checkpoints" / str(saved_steps(run)[-1]) / "state").absolute()
    checkpointer = ocp.PyTreeCheckpointer()
    metadata = checkpointer.metadata(folder).item_metadata.tree
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), metadata)
    params = checkpointer.restore(folder, restore_args=as_numpy)["params"]
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree.leaves_with_path(params)}


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_sigterm_to_one_process_stops_both_at_one_step_and_resumes_bitwise(tmp_path) -> None:
    steps = 320
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.format(tokens=steps * TOKENS_PER_STEP, every_steps=16, keep=2))
    run, reference = tmp_path / "interrupted", tmp_path / "reference"

    processes = start_two(train_command(config, run))
    wait_for_checkpoint(run, processes, beyond=16)
    processes[1].send_signal(signal.SIGTERM)  # the non-writer: the notice must reach process 0
    (code0, out0), (code1, out1) = finish(processes)
    assert code0 == code1 == 75, out0[-2000:] + out1[-2000:]
    stopped = [int(re.search(r"preempted at step (\d+)/", out).group(1)) for out in (out0, out1)]
    assert stopped[0] == stopped[1] < steps, stopped
    assert saved_steps(run)[-1] == stopped[0]  # the agreed step, committed by both
    assert not (run / "result.json").exists()

    for code, out in finish(start_two(train_command(config, run))):
        assert code == 0, out[-3000:]
    for code, out in finish(start_two(train_command(config, reference))):
        assert code == 0, out[-3000:]

    # TensorBoard events: process 0 alone writes, one file per start
    assert len(list(run.glob("events.out.tfevents.*"))) == 2
    assert len(list(reference.glob("events.out.tfevents.*"))) == 1
    resumed, want = (json.loads((r / "result.json").read_text()) for r in (run, reference))
    assert resumed["loss"] == want["loss"]  # bitwise on the same machine
    assert resumed["eval_curve"] == want["eval_curve"]
    lines, want_lines = jsonl(run / "metrics.jsonl"), jsonl(reference / "metrics.jsonl")
    assert [x["step"] for x in lines] == list(range(1, steps + 1))  # none twice, none lost
    assert [x["loss"] for x in lines] == [x["loss"] for x in want_lines]
    got, expected = final_params(run), final_params(reference)
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


@pytest.mark.slow
def test_a_time_based_save_one_process_asks_for_is_made_by_both(tmp_path) -> None:
    steps = 40
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.format(tokens=steps * TOKENS_PER_STEP, every_steps=0, keep=100))
    run = tmp_path / "run"
    # Process 1's clock runs 1e9 x fast: every chunk end is an hour after its last save;
    # process 0's clock never reaches the hour. Chunks end every 4 steps (and at evals).
    envs = ({}, {CLOCK_SPEED_ENV: "1e9"})
    for code, out in finish(start_two(train_command(config, run), envs)):
        assert code == 0, out[-3000:]
    assert saved_steps(run) == list(range(4, steps + 1, 4))
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "done" and result["provenance"]["process_count"] == 2
