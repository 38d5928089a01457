"""RunConfig: validation, eval points, overrides, hashing; and the chunking rule of the loop."""

import itertools
import json

import pytest

from lab.config import ModelConfig
from lab.errors import ConfigError
from lab.run_config import (
    RunConfig,
    ScalingRule,
    apply_overrides,
    default_eval_fractions,
    load_run_config,
)
from lab.train import chunk_size

MODEL = ModelConfig(n_layers=1, d_model=16, n_heads=2, d_ff=64, vocab_size=260, ctx=16)


def test_default_eval_fractions_are_log_spaced_and_end_at_one():
    fractions = default_eval_fractions(10, first=0.02)
    assert len(fractions) == 10 and fractions[0] == 0.02 and fractions[-1] == 1.0
    ratios = [b / a for a, b in itertools.pairwise(fractions)]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-3)


def test_eval_steps_sit_at_requested_flop_fractions():
    config = RunConfig(
        model=MODEL, num_tokens=100 * 4 * 16, batch_size=4, eval_fractions=(0.1, 0.25, 0.5, 1.0)
    )
    assert config.num_steps == 100
    assert config.eval_steps() == [10, 25, 50, 100]


def test_num_tokens_must_be_whole_steps_and_error_suggests_values():
    with pytest.raises(ConfigError, match=r"use 64 or 128"):
        RunConfig(model=MODEL, num_tokens=100, batch_size=4)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("batch_size", 0, "batch_size must be a positive integer"),
        ("steps_per_call", 1.5, "steps_per_call must be a positive integer"),
        ("eval_fractions", (0.5, 0.2), "increasing"),
        ("eval_fractions", (0.0, 1.0), "increasing numbers in"),
        ("divergence_factor", 0.5, "divergence_factor must be > 1"),
    ],
)
def test_bad_run_settings_have_clear_errors(field, value, message):
    kwargs = {"model": MODEL, "num_tokens": 4 * 16 * 10, "batch_size": 4, field: value}
    if field == "batch_size":
        kwargs["num_tokens"] = 160
    with pytest.raises(ConfigError, match=message):
        RunConfig(**kwargs)


def test_lr_rule_scales_with_model_size_and_is_recorded():
    rule = ScalingRule(reference_params=MODEL.num_params() / 4, exponent=-0.5)
    config = RunConfig(model=MODEL, num_tokens=640, batch_size=4, lr_rule=rule)
    assert config.peak_lr == pytest.approx(config.optimizer.peak_lr * 0.5)
    assert config.effective_optimizer().peak_lr == pytest.approx(config.peak_lr)
    again = RunConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.config_hash() == config.config_hash()


def test_toml_with_overrides_and_shape_rule(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        "num_tokens = 2048\nbatch_size = 4\n[model]\nparams = 3e4\nvocab_size = 260\nctx = 16\n"
        '[optimizer]\npeak_lr = 1e-3\n[data]\ncorpus = "synthetic"\n'
    )
    config = load_run_config(path, ["optimizer.peak_lr=2e-3", "seed=7", "data.eval_seed=3"])
    assert config.optimizer.peak_lr == 2e-3 and config.seed == 7 and config.data.eval_seed == 3
    assert 1.5e4 < config.model.num_params() < 6e4
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["nonsense"])
    with pytest.raises(ConfigError, match="unknown run config key"):
        load_run_config(path, ["learning_rate=1"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_run_config(tmp_path / "missing.toml")


def test_config_hash_changes_with_any_setting():
    a = RunConfig(model=MODEL, num_tokens=640, batch_size=4)
    b = RunConfig(model=MODEL, num_tokens=640, batch_size=4, seed=1)
    assert a.config_hash() != b.config_hash()


def test_chunking_never_crosses_a_boundary_and_depends_only_on_step():
    boundaries = [3, 10, 17]
    step, chunks = 0, []
    while step < 17:
        k = chunk_size(step, boundaries, 4)
        chunks.append(k)
        step += k
        assert all(not (step - k < b < step) for b in boundaries)
    assert chunks == [3, 4, 3, 4, 3]  # full chunks of 4, cut short at each boundary
    # resuming at any chunk end replays the remaining chunks exactly
    ends = [sum(chunks[: i + 1]) for i in range(len(chunks))]
    for i, start in enumerate(ends[:-1]):
        replay, s = [], start
        while s < 17:
            replay.append(chunk_size(s, boundaries, 4))
            s += replay[-1]
        assert replay == chunks[i + 1 :]


def test_batch_rule_scales_batch_with_model_size_in_whole_multiples():
    n = MODEL.num_params()
    rule = ScalingRule(reference_params=n / 4, exponent=0.5)  # 4x the reference: 2x the batch
    config = RunConfig(
        model=MODEL, num_tokens=8 * 16 * 10, batch_size=4, batch_rule=rule, batch_multiple=4
    )
    assert config.train_batch_size == 8
    assert config.tokens_per_step == 8 * 16 and config.num_steps == 10
    assert rule.batch_size(4, n, multiple=3) == 9  # 8 rounded to the nearest multiple of 3
    assert ScalingRule(reference_params=n * 1e6, exponent=1.0).batch_size(4, n, 8) == 8
    with pytest.raises(ConfigError, match="batch\\*ctx = 128 tokens"):
        RunConfig(model=MODEL, num_tokens=4 * 16 * 3, batch_size=4, batch_rule=rule)
    again = RunConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.train_batch_size == 8
