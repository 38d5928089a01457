"""A cooldown branch off a constant-LR trunk is, bitwise on CPU, the standalone WSD run.

The trunk's chunks (steps_per_call = 4, its own eval steps) differ from the standalone run's,
and the standalone run's chunk straddles the branch step: the equality holds because one
compiled loop runs every chunk and the schedule is optimizer-state data.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from lab import run_dir
from lab.branch import _fresh_state, check_branch, seed_from_parent
from lab.checkpoint import RunCheckpoints
from lab.config import MeshConfig, ModelConfig, OptimizerConfig
from lab.data import DataConfig, load_corpus
from lab.errors import ConfigError
from lab.run_config import RunConfig
from lab.train import train

STEPS, START = 30, 24  # cooldown_fraction 0.2 of 30 steps: the cooldown starts at step 24


def wsd_run(data_config: DataConfig, steps: int, cooldown: float) -> RunConfig:
    vocab = load_corpus(data_config).tokenizer.vocab_size
    return RunConfig(
        model=ModelConfig(n_layers=1, d_model=32, n_heads=2, d_ff=128, vocab_size=vocab, ctx=32),
        num_tokens=steps * 8 * 32,
        batch_size=8,
        steps_per_call=4,
        optimizer=OptimizerConfig(
            peak_lr=1e-2, warmup_steps=3, schedule="wsd", cooldown_fraction=cooldown
        ),
        mesh=MeshConfig(data=-1),
        data=data_config,
        eval_fractions=(0.25, 0.5, 1.0),
        eval_batches=2,
        eval_batch_size=8,
    )


def step_log(path, key: str) -> dict[int, float]:
    lines = [json.loads(x) for x in run_dir.metrics_path(path).read_text().splitlines()]
    return {x["step"]: x[key] for x in lines}


def final_params(config: RunConfig, path) -> list[np.ndarray]:
    checkpoints = RunCheckpoints(run_dir.checkpoint_dir(path))
    try:
        state, _ = checkpoints.restore(_fresh_state(config))
    finally:
        checkpoints.close()
    return [np.asarray(x) for x in jax_leaves(state.params)]


def jax_leaves(tree):
    import jax

    return jax.tree.leaves(tree)


def test_branch_is_bitwise_the_standalone_wsd_run(tmp_path, data_config):
    standalone = wsd_run(data_config, STEPS, 0.2)
    assert STEPS - standalone.optimizer.cooldown_steps(STEPS) == START
    trunk = wsd_run(data_config, START, 0.0)  # constant LR, its final checkpoint at START
    alone = train(standalone, tmp_path / "alone", progress=False)
    train(trunk, tmp_path / "trunk", progress=False)

    assert seed_from_parent(standalone, tmp_path / "branch", tmp_path / "trunk", START)
    assert not seed_from_parent(standalone, tmp_path / "branch", tmp_path / "trunk", START)
    # same tokens: the seeded stream position continues the standalone run's stream
    corpus = load_corpus(data_config)
    kwargs = dict(ctx=32, batch_size=8, num_tokens=standalone.num_tokens, seed=0)
    reference, seeded = corpus.train_stream(**kwargs), corpus.train_stream(**kwargs)
    reference.next_batches(START)
    _, host = RunCheckpoints(run_dir.checkpoint_dir(tmp_path / "branch")).restore(
        _fresh_state(standalone)
    )
    seeded.restore(host["stream"])
    assert np.array_equal(seeded.next_batches(STEPS - START), reference.next_batches(STEPS - START))

    branch = train(standalone, tmp_path / "branch", progress=False)
    assert branch["status"] == "done" and branch["steps"] == STEPS
    assert branch["loss"] == alone["loss"]  # bitwise
    own, mine = step_log(tmp_path / "alone", "loss"), step_log(tmp_path / "branch", "loss")
    assert sorted(mine) == list(range(START + 1, STEPS + 1))  # logged by steps done
    assert all(mine[s] == own[s] for s in mine)
    trunk_log = step_log(tmp_path / "trunk", "loss")
    assert all(trunk_log[s] == own[s] for s in trunk_log)  # the trunk is the run's first part
    assert step_log(tmp_path / "branch", "lr") == {
        s: step_log(tmp_path / "alone", "lr")[s] for s in mine
    }
    for a, b in zip(
        final_params(standalone, tmp_path / "alone"),
        final_params(standalone, tmp_path / "branch"),
        strict=True,
    ):
        assert np.array_equal(a, b)


def test_branch_refuses_a_parent_that_trained_differently(tmp_path, data_config):
    standalone = wsd_run(data_config, STEPS, 0.2)
    other = dataclasses.replace(standalone, seed=1, num_tokens=START * 8 * 32)
    run_dir.claim_run_dir(tmp_path / "parent", other)
    with pytest.raises(ConfigError, match="differ in seed"):
        seed_from_parent(standalone, tmp_path / "b", tmp_path / "parent", START)
    # a branch that starts inside its own cooldown cannot come from a constant-LR trunk
    with pytest.raises(ConfigError, match="lr differs"):
        check_branch(wsd_run(data_config, START + 4, 0.0), standalone, START + 2)
