"""The Ray executor's parts that need no cluster (and no Ray): the `[resources]` table, the
placement check, the task's claim takeover, the XLA setup of a task, the CLI's errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from experiments.claims import ClaimStore
from experiments.jobs import SINGLE_THREAD_FLAGS
from experiments.main import main
from experiments.ray_cluster import check_placeable, connect, is_loopback, nodes_that_fit
from experiments.ray_submit import task_env
from experiments.ray_tasks import wait_for_claim, worker_name
from experiments.resources import ResourcesError, RunResources, parse_resources
from experiments.sweep_file import load_sweep, parse_sweep
from lab.config import ModelConfig
from lab.errors import ConfigError

MICRO = Path(__file__).resolve().parent.parent / "experiments" / "configs" / "micro.toml"


def model(d_model: int) -> ModelConfig:
    return ModelConfig(n_layers=2, d_model=d_model, n_heads=2, d_ff=4 * d_model, vocab_size=16)


def test_resources_default_and_per_size_overrides_in_order() -> None:
    spec = parse_resources(
        {
            "num_cpus": 2,
            "custom": {"TPU": 4},
            "sizes": [
                {"min_params": 5e4, "num_gpus": 1, "max_retries": 5},
                {"d_model": 64, "hosts": 2, "num_cpus": 8},
            ],
        }
    )
    small, mid, big = model(16), model(48), model(64)
    assert small.num_params() < 5e4 <= mid.num_params() < big.num_params()  # the selectors' premise
    assert spec.for_model(small) == RunResources(num_cpus=2.0, custom=(("TPU", 4.0),))
    assert spec.for_model(mid).bundle() == {"CPU": 2.0, "GPU": 1.0, "TPU": 4.0}
    assert spec.for_model(mid).max_retries == 5 and spec.for_model(mid).hosts == 1
    both = spec.for_model(big)  # both overrides match; the later one wins where they overlap
    assert (both.num_cpus, both.num_gpus, both.hosts, both.max_retries) == (8.0, 1.0, 2, 5)
    assert both.describe() == "2 hosts x (CPU=8, GPU=1, TPU=4)"
    assert parse_resources(None).for_model(big) == RunResources()  # 1 CPU, 3 retries
    assert RunResources().bundle() == {"CPU": 1.0}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"gpus": 1}, "unknown [resources] key(s) ['gpus']"),
        ({"num_gpus": -1}, "num_gpus must be a number >= 0"),
        ({"hosts": 0}, "hosts must be an integer >= 1"),
        ({"custom": {"TPU": "four"}}, "custom = { TPU = 4 }"),
        ({"sizes": [{"num_gpus": 1}]}, "needs exactly one of d_model = 512"),
        ({"sizes": [{"d_model": 64}]}, "overrides nothing"),
    ],
)
def test_bad_resources_name_the_key_and_the_fix(table: dict, message: str) -> None:
    with pytest.raises(ResourcesError, match=None) as error:
        parse_resources(table)
    assert message in str(error.value)


def test_a_sweep_file_carries_resources_outside_its_identity() -> None:
    import tomllib

    table = tomllib.loads(MICRO.read_text())
    plain = parse_sweep(table)
    with_ray = parse_sweep({**table, "resources": {"num_gpus": 1, "hosts": 2}})
    assert with_ray.resources.default.hosts == 2 and plain.resources.default.hosts == 1
    assert with_ray == plain  # a restarted sweep may ask for other resources, same runs
    assert load_sweep(MICRO).resources == plain.resources
    with pytest.raises(ConfigError, match="unknown \\[resources\\] key"):
        parse_sweep({**table, "resources": {"cpus": 1}})


NODES = [{"CPU": 1.0, "memory": 1e9, "node:127.0.0.1": 1.0}, {"CPU": 4.0, "GPU": 1.0}]


def test_placement_check_counts_nodes_that_can_hold_one_process() -> None:
    assert nodes_that_fit({"CPU": 1.0}, NODES) == 2
    assert nodes_that_fit({"CPU": 2.0, "GPU": 1.0}, NODES) == 1
    check_placeable([(_point(), RunResources(hosts=2))], NODES)  # fits: no error


def test_a_run_no_node_can_hold_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError) as error:
        check_placeable([(_point(), RunResources(custom=(("TPU", 4.0),)))], NODES)
    text = str(error.value)
    assert "1 run(s) can never start" in text and "TPU=4" in text
    assert """--resources='{"TPU": 4}'""" in text and "[resources]" in text
    assert "2 node(s): CPU=1 | CPU=4, GPU=1" in text  # memory and node: ids left out
    with pytest.raises(ConfigError, match="2 node\\(s\\) can hold one of its 3 process"):
        check_placeable([(_point(), RunResources(hosts=3))], NODES)


def _point():
    from experiments.context import build_grid

    grid, _ = build_grid(load_sweep(MICRO), check_memory=False)
    return grid.points[0]


def test_loopback_addresses() -> None:
    assert is_loopback("127.0.0.1:6379") and is_loopback("localhost:1") and is_loopback("[::1]:2")
    assert not is_loopback("10.0.0.2:6379") and not is_loopback("head-node:6379")


def test_a_one_cpu_task_gets_the_single_threaded_xla_of_a_local_job() -> None:
    assert SINGLE_THREAD_FLAGS in task_env(RunResources())["XLA_FLAGS"]
    assert task_env(RunResources(num_cpus=4)) == {}
    assert task_env(RunResources(cpu_devices=4)) == {}


def test_a_retried_task_takes_over_its_earlier_attempt_s_claim(tmp_path) -> None:
    earlier = ClaimStore(tmp_path, worker_name("TASK1", "node0abc"))
    assert earlier.try_claim("run")  # live: this process exists, heartbeat fresh
    other = ClaimStore(tmp_path, worker_name("TASK1", "node1def"))
    assert not other.try_claim("run")
    assert wait_for_claim(other, "run", {"TASK1"}, finished=lambda: False)
    assert other.read("run")["worker"] == "ray:node1def:TASK1"
    other.stop()


def test_a_claim_held_by_a_live_stranger_is_waited_for_until_the_run_is_done(tmp_path) -> None:
    stranger = ClaimStore(tmp_path, worker_name("TASK9", "node0abc"))
    assert stranger.try_claim("run")
    waiter = ClaimStore(tmp_path, worker_name("TASK1", "node1def"), heartbeat_s=0.01)
    polls = iter([False, False, True])
    assert not wait_for_claim(waiter, "run", {"TASK1"}, finished=lambda: next(polls))
    assert stranger.read("run")["worker"] == "ray:node0abc:TASK9"  # never taken from it


def test_without_ray_the_executor_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match="pip install 'scaling-lab\\[ray\\]'"):
        connect(None)


def test_address_without_the_ray_executor_is_a_usage_error(tmp_path, capsys) -> None:
    code = main(["sweep", "run", str(MICRO), "--out", str(tmp_path), "--address", "auto"])
    assert code == 2 and "add --executor ray" in capsys.readouterr().err
    ray_flags = ["--executor", "ray", "--coordinator", "127.0.0.1:1"]
    code = main(["sweep", "run", str(MICRO), "--out", str(tmp_path), *ray_flags])
    assert code == 2 and "drop --distributed" in capsys.readouterr().err
