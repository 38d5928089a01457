"""One run trained straight into a bucket (the GCS emulator, tests/gcs_emulator.py).

`train --out gs://...` must put everything in the bucket (orbax writes the checkpoints there
through TensorStore; the JSONL logs are rewritten whole at each checkpoint) and end exactly
where the same run trained locally ends; a SIGKILLed run resumes from the bucket bitwise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_train_run import tiny_run

from lab import run_dir
from lab.checkpoint import checkpoint_steps
from lab.train import train

WALL_CLOCK = {"step_time_s", "tokens_per_s", "flops_per_s", "mfu"}


def _log(text: str) -> list[dict]:
    """JSONL lines without their wall-clock fields (those differ between any two runs)."""
    lines = [json.loads(line) for line in text.splitlines()]
    return [{k: v for k, v in line.items() if k not in WALL_CLOCK} for line in lines]


def _params(directory: str) -> dict[str, np.ndarray]:
    import jax
    import orbax.checkpoint as ocp

    from lab.checkpoint import _directory

    with ocp.CheckpointManager(_directory(directory)) as manager:
        restored = manager.restore(
            manager.latest_step(), args=ocp.args.Composite(state=ocp.args.StandardRestore())
        )
    leaves = jax.tree.leaves_with_path(restored["state"]["params"])
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves}


def _assert_same_run(remote: str, local: Path) -> None:
    got, want = run_dir.read_result(remote), run_dir.read_result(local)
    assert got["loss"] == want["loss"]  # bitwise on the same machine
    assert got["eval_curve"] == want["eval_curve"]
    assert got["D"] == want["D"] and got["steps"] == want["steps"]
    for name in (run_dir.METRICS_FILE, run_dir.EVALS_FILE):
        remote_log = run_dir.run_path(remote) / name
        assert _log(remote_log.read_text()) == _log((local / name).read_text()), name
    got_params, want_params = _params(remote + "/checkpoints"), _params(str(local / "checkpoints"))
    assert got_params.keys() == want_params.keys()
    for name in want_params:
        np.testing.assert_array_equal(got_params[name], want_params[name], err_msg=name)


def test_run_trained_to_a_bucket_equals_the_same_run_trained_locally(
    gcs_bucket, data_config, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # a local folder named gs: would appear here
    config = tiny_run(data_config, steps=16, checkpoint_every_steps=8, keep_final_checkpoint=True)
    remote = gcs_bucket.url("run")

    result = train(config, remote, progress=False)
    reference = train(config, tmp_path / "local", progress=False)

    assert result["loss"] == reference["loss"]
    stored = gcs_bucket.objects("run")
    assert {"config.json", "result.json", "metrics.jsonl", "evals.jsonl"} <= set(stored)
    assert "checkpoints/16/commit_success.txt" in stored  # orbax's commit marker on GCS
    assert checkpoint_steps(remote + "/checkpoints") == [8, 16]
    assert not (tmp_path / "gs:").exists()
    _assert_same_run(remote, tmp_path / "local")
    assert train(config, remote, progress=False) == run_dir.read_result(remote)  # finished


def _wait_for_remote_checkpoint(bucket, process: subprocess.Popen, beyond: int) -> int:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        steps = [
            int(name.split("/")[1])
            for name in bucket.objects("run")
            if name.startswith("checkpoints/")
            and name.endswith("/commit_success.txt")
            and name.count("/") == 2
        ]
        if steps and max(steps) > beyond:
            return max(steps)
        if process.poll() is not None:
            raise AssertionError(f"run ended before it was killed: {process.stderr.read()[-2000:]}")
        time.sleep(0.1)
    raise AssertionError("no checkpoint appeared in the bucket")


@pytest.mark.slow  # three CLI processes through the emulator (~40 s)
def test_sigkill_then_resume_from_the_bucket_equals_an_uninterrupted_run(
    gcs_bucket, data_config, tmp_path
):
    config = tiny_run(
        data_config, steps=64, checkpoint_every_steps=8, steps_per_call=2,
        keep_final_checkpoint=True,
    )  # fmt: skip
    config_file = tmp_path / "run.json"
    config_file.write_text(json.dumps(config.to_dict()))
    remote = gcs_bucket.url("run")
    command = [sys.executable, "-m", "experiments.main", "train", "--config", str(config_file)]
    command += ["--out", remote, "--compilation-cache", "none"]
    env = {**os.environ, "SCALING_LAB_QUIET": "1"}

    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed_after = _wait_for_remote_checkpoint(gcs_bucket, first, beyond=8)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert "result.json" not in gcs_bucket.objects("run")

    second = subprocess.run(command, env=env, capture_output=True, timeout=300)
    assert second.returncode == 0, second.stderr.decode()[-3000:]
    reference = train(config, tmp_path / "reference", progress=False)
    _assert_same_run(remote, tmp_path / "reference")
    steps = [
        line["step"] for line in _log((run_dir.run_path(remote) / "metrics.jsonl").read_text())
    ]
    assert steps == list(range(2, 65, 2)) or steps == list(range(1, 65))  # none twice, none lost
    assert killed_after < config.num_steps and reference["status"] == "done"
