"""`sweep run --executor ray` on a 2-node Ray cluster on the loopback address (1 CPU each).

The fixture starts the cluster with `ray.cluster_utils.Cluster` (every node on 127.0.0.1,
checked before any test runs) and stops it at the end. Drivers are `scaling-lab sweep run`
subprocesses, as a user runs them. The reference is the local executor on the same `micro`
sweep with the single-threaded XLA that both executors give a one-CPU run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before Ray is imported
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ray = pytest.importorskip(
    "ray", reason="Ray is not installed; the Ray executor tests need pip install '.[ray]'"
)
from experiments.claims import ClaimStore  # noqa: E402
from experiments.jobs import SINGLE_THREAD_FLAGS  # noqa: E402
from experiments.ray_cluster import loopback_cluster  # noqa: E402
from experiments.results import read_csv  # noqa: E402
from experiments.status import format_status  # noqa: E402
from experiments.sweep_dir import read_plan  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MICRO = REPO / "experiments" / "configs" / "micro.toml"
NODE = {"num_cpus": 1, "node_ip_address": "127.0.0.1"}


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    path = os.environ.get("PYTHONPATH")
    out.update(
        JAX_PLATFORMS="cpu",
        PYTHONPATH=f"{REPO}{os.pathsep}{path}" if path else str(REPO),
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        RAY_USAGE_STATS_ENABLED="0",
        SCALING_LAB_QUIET="1",
        **extra,
    )
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two 1-CPU nodes on 127.0.0.1; their processes get `env()` (no fake 8-device XLA)."""
    tpu_logs = tmp_path_factory.mktemp("tpu_logs")  # not the host's /tmp/tpu_logs
    with loopback_cluster(2, 1, env(TPU_LOG_DIR=str(tpu_logs))) as started:
        addresses = [node.node_ip_address for node in started.list_all_nodes()]
        assert len(addresses) == 2 and all(a.startswith("127.") for a in addresses), addresses
        assert started.address.startswith("127.")
        yield started


def sweep_run(cluster, out: Path, sweep_file: Path = MICRO, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "experiments.main", "sweep", "run", str(sweep_file)]
    command += ["--out", str(out), "--executor", "ray", "--address", cluster.address]
    return subprocess.Popen(
        [*command, "--no-progress", *extra],
        cwd=REPO,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen, timeout: float = 240) -> str:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out[-4000:]
    return out


def announced(output: str) -> list[str]:
    """Run ids the driver reported finished (`[ray] k/n RUN_ID loss ...`)."""
    lines = [line.split() for line in output.splitlines() if line.startswith("[ray] ")]
    return [words[2] for words in lines if "/" in words[1]]


def results(root: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in (root / "runs").glob("*/result.json")}


def curves(result: dict) -> list[tuple[int, float]]:
    return [(point["step"], point["loss"]) for point in result["eval_curve"]]


def run_local(sweep_file: Path, out: Path) -> Path:
    """The local executor's sweep (one job, single-threaded XLA as a Ray 1-CPU task)."""
    command = [sys.executable, "-m", "experiments.main", "sweep", "run", str(sweep_file)]
    subprocess.run(
        [*command, "--out", str(out), "--jobs", "1", "--no-progress"],
        cwd=REPO,
        env=env(XLA_FLAGS=SINGLE_THREAD_FLAGS),
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="module")
def local_micro(tmp_path_factory) -> Path:
    """The local executor's micro sweep."""
    return run_local(MICRO, tmp_path_factory.mktemp("local"))


def assert_same_runs(root: Path, reference: Path) -> None:
    """Every run finished once, with the reference's losses and eval curves bit for bit."""
    ours, theirs = results(root), results(reference)
    assert sorted(ours) == sorted(theirs) and len(ours) == 6
    for run_id, result in ours.items():
        assert result["status"] == "done"
        assert result["loss"] == theirs[run_id]["loss"], run_id
        assert curves(result) == curves(theirs[run_id]), run_id
        steps = [
            json.loads(line)["step"] for line in (root / "runs" / run_id / "metrics.jsonl").open()
        ]
        assert steps == list(range(1, result["steps"] + 1)), run_id  # each step logged once
    assert not list((root / "claims").glob("*.json"))  # every task released its claim


def test_micro_on_ray_equals_the_local_executor_bitwise(cluster, local_micro, tmp_path) -> None:
    """...with one run held by a live claim (a task of another driver) until the rest end:
    the driver submits it only once that claim is released."""
    root = tmp_path / "ray"
    held = sorted(results(local_micro))[0]
    elsewhere = ClaimStore(root, "ray:another:TASK")
    assert elsewhere.try_claim(held)
    driver = sweep_run(cluster, root)
    deadline = time.monotonic() + 180
    while len(results(root)) < 5 and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.1)
    time.sleep(2)  # the driver polls claims every second: it would have submitted by now
    assert held not in results(root) and len(results(root)) == 5
    released = time.time()
    elsewhere.release(held)
    output = finish(driver)
    assert "held back until they end" in output
    finished_at = results(root)[held]["provenance"]["finished_at"]
    assert datetime.fromisoformat(finished_at).timestamp() >= int(released)  # whole seconds
    assert "Ray dashboard:" in output and "2 node(s)" in output
    assert sorted(announced(output)) == sorted(results(local_micro))  # each run once
    assert_same_runs(root, local_micro)
    ours, theirs = read_csv(root / "results.csv"), read_csv(local_micro / "results.csv")
    assert list(ours[0]) == list(theirs[0])
    by_id = {row["run_id"]: row for row in theirs}
    for row in ours:
        for column in ("loss", "N", "D", "C_6N", "budget", "status", "config_hash", "seed"):
            assert row[column] == by_id[row["run_id"]][column], column
    loss = lambda rows: sorted((r["run_id"], r["step"], r["loss"]) for r in rows)  # noqa: E731
    assert loss(read_csv(root / "curves.csv")) == loss(read_csv(local_micro / "curves.csv"))
    assert "6/6 finished (6 done" in format_status(root) and "0 running" in format_status(root)


def checkpointed_step(run: Path) -> int:
    """The run's latest finished checkpoint (orbax renames `<step>` into place when done)."""
    try:
        return max(
            (int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit()), default=0
        )
    except OSError:
        return 0


def kill_when_mid_run(
    root: Path, process: subprocess.Popen, kill, node_prefix: str = "", freeze: bool = False
) -> str:
    """Call kill() once a run (on the node `node_prefix`, if given) has a finished checkpoint
    and no result; the run's id.

    With `freeze`, the process training the run (the claim's pid, on this host) is stopped
    (SIGSTOP) first, so its last steps cannot race kill(), and SIGKILLed after it: the run
    is caught mid-way for certain, as it would be if its machine lost power at that moment.
    """
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        for claim_file in (root / "claims").glob("*.json"):
            try:
                claim = json.loads(claim_file.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            run = root / "runs" / claim["run_id"]
            on_node = claim["worker"].startswith(f"ray:{node_prefix}")
            if not (on_node and checkpointed_step(run) and not (run / "result.json").exists()):
                continue
            if freeze:
                try:
                    os.kill(int(claim["pid"]), signal.SIGSTOP)
                except ProcessLookupError:
                    continue  # the run ended (and released its claim) meanwhile
                if (run / "result.json").exists():  # finished before the stop took hold
                    os.kill(int(claim["pid"]), signal.SIGCONT)
                    continue
            kill()
            if freeze:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(claim["pid"]), signal.SIGKILL)
            return claim["run_id"]
        time.sleep(0.05)
    pytest.fail("no run was caught between its checkpoint and its end")


def test_a_removed_node_s_run_resumes_on_the_other_node(cluster, local_micro, tmp_path) -> None:
    root = tmp_path / "ray"
    head, worker = cluster.list_all_nodes()
    driver = sweep_run(cluster, root)
    try:
        killed = kill_when_mid_run(
            root,
            driver,
            lambda: cluster.remove_node(worker, allow_graceful=False),
            node_prefix=worker.node_id[:8],
            freeze=True,  # a micro run's tail after its checkpoint is shorter than the removal
        )
        output = finish(driver)
    finally:
        cluster.add_node(**NODE)  # back to two nodes for the other tests
        cluster.wait_for_nodes()
    resumed = [line for line in output.splitlines() if f"[ray] {killed} resumed from" in line]
    assert len(resumed) == 1, output[-3000:]
    step = int(resumed[0].split("step-")[1].split()[0])
    assert step >= 40 and resumed[0].endswith(f"on node {head.node_id[:8]}")
    assert sorted(announced(output)) == sorted(results(local_micro))  # every run once
    assert_same_runs(root, local_micro)  # final losses as if nothing had happened


@pytest.mark.slow
def test_a_killed_driver_restarted_trains_nothing_twice(cluster, local_micro, tmp_path) -> None:
    root = tmp_path / "ray"
    driver = sweep_run(cluster, root)
    # frozen first: a dead driver's task lives on until Ray notices (seconds), and could finish
    killed = kill_when_mid_run(
        root, driver, lambda: os.kill(driver.pid, signal.SIGKILL), freeze=True
    )
    driver.communicate()
    before = {name: r["provenance"]["finished_at"] for name, r in results(root).items()}
    assert killed not in before
    output = finish(sweep_run(cluster, root))
    everything = {p["run_id"] for p in read_plan(root)["points"]}
    assert sorted(announced(output)) == sorted(everything - set(before))
    assert f"[ray] {killed} resumed from its step-" in output
    after = results(root)
    assert {name: after[name]["provenance"]["finished_at"] for name in before} == before
    assert_same_runs(root, local_micro)


GANG = """\
[sweep]
budgets_flops = [3e8]
d_models = [32]
tokens_per_param_guess = 20
min_steps = 20
max_epochs = 20.0

[run]
batch_size = 8
steps_per_call = 4
eval_batches = 2
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

[resources]
hosts = 2        # one process on each node: a STRICT_SPREAD placement group
cpu_devices = 4  # 4 CPU devices per process: 8 in all
"""


@pytest.mark.slow
def test_two_processes_in_a_placement_group_match_one_of_eight(cluster, tmp_path) -> None:
    """As tests/test_multihost.py checks `--coordinator` by hand: 2 x 4 devices == 1 x 8."""
    sweep_file = tmp_path / "gang.toml"
    sweep_file.write_text(GANG)
    root = tmp_path / "ray"
    output = finish(sweep_run(cluster, root, sweep_file))
    (run_id,) = announced(output)
    multi = results(root)[run_id]
    assert multi["provenance"]["process_count"] == 2
    assert multi["provenance"]["device_count"] == 8
    single = tmp_path / "single"
    reference = one_of_eight(root / "runs" / run_id / "config.json", single)
    assert reference["provenance"]["device_count"] == 8
    step_losses = [
        [json.loads(line)["loss"] for line in (path / "metrics.jsonl").open()]
        for path in (root / "runs" / run_id, single)
    ]
    assert len(step_losses[0]) == len(step_losses[1]) == multi["steps"]
    assert step_losses[0] == pytest.approx(step_losses[1], rel=1e-5)
    assert multi["loss"] == pytest.approx(reference["loss"], rel=1e-5)


def test_a_run_needing_a_missing_resource_is_refused_at_once(cluster, tmp_path) -> None:
    sweep_file = tmp_path / "tpu.toml"
    text = MICRO.read_text() + "\n[resources]\ncustom = { TPU = 4 }\n"
    sweep_file.write_text(text.replace("d_models = [16, 32]", "d_models = [16]"))
    started = time.monotonic()
    process = sweep_run(cluster, tmp_path / "ray", sweep_file)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 2, output[-3000:]
    (line,) = [x for x in output.splitlines() if ": error: " in x]
    assert "can never start on this Ray cluster" in line and "TPU=4" in line
    assert "ray start" in line and "[resources]" in line
    assert time.monotonic() - started < 60
    assert not list((tmp_path / "ray" / "runs").glob("*/config.json"))  # nothing submitted


def one_of_eight(config: Path, out: Path) -> dict:
    """The reference: the same run config as one process over 8 CPU devices."""
    command = [sys.executable, "-m", "experiments.main", "train", "--config", str(config)]
    eight = env(XLA_FLAGS="--xla_force_host_platform_device_count=8")
    subprocess.run([*command, "--out", str(out)], cwd=REPO, env=eight, check=True)
    return json.loads((out / "result.json").read_text())


@pytest.mark.slow
def test_a_gang_that_loses_a_process_is_placed_again_and_resumes(cluster, tmp_path) -> None:
    sweep_file = tmp_path / "gang.toml"
    sweep_file.write_text(GANG.replace("[run]\n", "[run]\ncheckpoint_every_steps = 8\n"))
    root = tmp_path / "ray"
    driver = sweep_run(cluster, root, sweep_file)

    def kill_process_0() -> None:  # its claim names its pid
        (claim,) = [json.loads(p.read_text()) for p in (root / "claims").glob("*.json")]
        os.kill(int(claim["pid"]), signal.SIGKILL)

    killed = kill_when_mid_run(root, driver, kill_process_0)
    output = finish(driver)
    assert f"[ray] {killed}: a process of its gang failed" in output
    assert f"[ray] {killed} resumed from its step-" in output
    (result,) = results(root).values()
    assert result["status"] == "done" and result["provenance"]["process_count"] == 2
    steps = [json.loads(line)["step"] for line in (root / "runs" / killed / "metrics.jsonl").open()]
    assert steps == list(range(1, result["steps"] + 1))  # each step logged once
    reference = one_of_eight(root / "runs" / killed / "config.json", tmp_path / "single")
    assert result["loss"] == pytest.approx(reference["loss"], rel=1e-5)


TUNING = '\n[tuning]\nlr_values = [1e-3, 3e-3, 1e-2, 3e-2]\nsteps = 24\nsizes = "all"\n'


@pytest.mark.slow
def test_a_tuning_stage_on_ray_fits_the_same_law_before_the_main_runs(cluster, tmp_path) -> None:
    sweep_file = tmp_path / "micro_tuned.toml"
    sweep_file.write_text(MICRO.read_text() + TUNING)
    local = run_local(sweep_file, tmp_path / "local")
    root = tmp_path / "ray"
    output = finish(sweep_run(cluster, root, sweep_file))
    lines = output.splitlines()
    law_line = next(i for i, line in enumerate(lines) if line.startswith("tuning done: LR_opt(N)"))
    finished = [line.split()[2] for line in lines if line.startswith("[ray] ") and "/" in line]
    order = [i for i, line in enumerate(lines) if line.startswith("[ray] ") and "/" in line]
    assert len(finished) == 14 and all(  # every tuning run before the law, every main run after
        name.startswith("tune_") == (i < law_line) for name, i in zip(finished, order, strict=True)
    )
    law = lambda root: json.loads((root / "lr_law.json").read_text())["law"]  # noqa: E731
    assert law(root) == law(local)
    ours, theirs = results(root), results(local)
    assert sorted(ours) == sorted(theirs)  # main run ids carry the law's LRs: the same runs
    assert {k: r["loss"] for k, r in ours.items()} == {k: r["loss"] for k, r in theirs.items()}
