"""The README's Cloud TPU path in miniature, end to end, on this CPU host.

What `tpu_pod.toml` and the README's TPU section tell a user to do, at toy size:
1. `scaling-lab data prepare SOURCE --tokenizer ... --out DIR` (token shards on local disk);
2. a sweep file whose `[data] corpus = "prepared:DIR"`, with tpu_pod's model settings
   (scanned layers, save-dots remat) and an FSDP x data mesh;
3. `sweep run FILE --out gs://BUCKET/...` started on every host at once (here 2 processes x
   4 fake CPU devices over gloo, the bucket a GCS emulator on 127.0.0.1);
4. a preemption notice (SIGTERM) reaching one host only: both hosts save the same step to the
   bucket and exit 75; the same command on both hosts resumes and finishes the sweep.
The finished sweep must equal the same sweep trained by one process on 8 devices into a local
directory (per-run final loss, rtol 1e-5: the 2 x 4 and 1 x 8 reductions differ in order).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_multihost import REPO, base_env
from test_multihost_preemption import finish, start_two

pytestmark = pytest.mark.slow

WORDS = "the of and model scaling loss token budget compute data train step shard bucket host"

SWEEP = """\
[sweep]
budgets_flops = [1.5e9]
d_models = [16, 32]
tokens_per_param_guess = 20
min_steps = 40
max_epochs = 20.0

[run]
batch_size = 8
steps_per_call = 4
checkpoint_every_steps = 8
eval_batches = 1
eval_batch_size = 8
eval_fractions = [0.5, 1.0]
keep_final_checkpoint = false

[model]
ctx = 32
scan_layers = true
remat = "save-dots"

[data]
corpus = "prepared:{prepared}"
tokenizer = "byte"
eval_fraction = {eval_fraction}

[mesh]
data = -1
fsdp = 2
"""


def write_corpus(folder: Path, docs: int = 300) -> None:
    """Small text files (one document each) from a fixed vocabulary, seeded."""
    rng = random.Random(0)
    words = WORDS.split()
    folder.mkdir()
    for i in range(docs):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(40, 120)))
        (folder / f"doc{i:04d}.txt").write_text(text + "\n")


def lab_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "experiments.main", *args]


def committed_checkpoints(bucket) -> list[str]:
    """Checkpoint steps committed in the bucket (orbax marks each with commit_success.txt)."""
    return [name for name in bucket.objects("pod") if name.endswith("commit_success.txt")]


def final_losses(read_result) -> dict[str, float]:
    plan = json.loads(read_result("plan.json"))
    return {
        p["run_id"]: json.loads(read_result("runs", p["run_id"], "result.json"))["loss"]
        for p in plan["points"]
    }


def test_prepare_then_a_two_host_sweep_on_a_bucket_survives_a_preemption(
    tmp_path: Path, gcs_bucket
) -> None:
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    prepared = tmp_path / "prepared"
    subprocess.run(
        [
            *lab_command("data", "prepare", f"text:{corpus}", "--tokenizer", "byte"),
            *("--workers", "2", "--eval-fraction", "0.1", "--out", str(prepared)),
        ],
        cwd=REPO,
        env=base_env(),
        check=True,
        capture_output=True,
    )
    sweep = tmp_path / "pod.toml"
    sweep.write_text(SWEEP.format(prepared=prepared, eval_fraction=0.1))
    out = gcs_bucket.url("pod")
    sweep_run = lab_command("sweep", "run", str(sweep), "--out", out, "--no-progress")

    hosts = start_two(sweep_run)
    deadline = time.monotonic() + 300
    while not committed_checkpoints(gcs_bucket):
        assert time.monotonic() < deadline, "no checkpoint reached the bucket"
        assert all(p.poll() is None for p in hosts), finish(hosts, timeout=400)
        time.sleep(0.1)
    hosts[1].send_signal(signal.SIGTERM)  # the preemption notice reaches one host only
    (code0, out0), (code1, out1) = finish(hosts, timeout=400)
    assert code0 == code1 == 75, out0[-2500:] + out1[-2500:]
    assert "preempted at step" in out0 + out1

    for code, output in finish(start_two(sweep_run), timeout=400):  # the same command resumes
        assert code == 0, output[-3000:]

    local = tmp_path / "local"  # the reference: 1 process x 8 devices, a local directory
    env = {**base_env(), "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    subprocess.run(
        lab_command("sweep", "run", str(sweep), "--out", str(local), "--no-progress"),
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )

    got = final_losses(lambda *parts: gcs_bucket.read("pod", *parts))
    want = final_losses(lambda *parts: (local.joinpath(*parts)).read_bytes())
    assert got.keys() == want.keys() and len(got) == 2
    for run_id, loss in want.items():
        assert got[run_id] == pytest.approx(loss, rel=1e-5), run_id
    for run_id in got:
        record = json.loads(gcs_bucket.read("pod", "runs", run_id, "result.json"))
        assert record["status"] == "done"
        assert record["provenance"]["process_count"] == 2
        assert record["provenance"]["device_count"] == 8
        steps = [
            json.loads(line)["step"]
            for line in gcs_bucket.read("pod", "runs", run_id, "metrics.jsonl").splitlines()
        ]
        assert steps == list(range(1, len(steps) + 1))  # each step once across the resume
    assert not [n for n in gcs_bucket.objects("pod") if n.startswith("claims/")]
    assert os.path.exists(prepared / "manifest.json")
