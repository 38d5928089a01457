"""Configs: every bad value gets its own clear ConfigError; presets follow the shape rule."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest

from lab.config import MeshConfig, ModelConfig, OptimizerConfig
from lab.errors import ConfigError
from lab.presets import ASPECT_RATIO, model_for_params, preset, preset_names
from lab.units import (
    PF_DAY_FLOPS,
    accelerator_hours,
    flops_from_accelerator_hours,
    flops_to_pf_days,
    pf_days_to_flops,
)

BASE = {"n_layers": 2, "d_model": 64, "n_heads": 4, "d_ff": 256}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_heads": 5}, "not divisible by n_heads=5"),
        ({"d_model": 0}, "d_model must be >= 1"),
        ({"n_layers": 2.0}, "n_layers must be an integer"),
        ({"n_layers": True}, "n_layers must be an integer"),
        ({"vocab_size": 1}, "vocab_size must be >= 2"),
        ({"ctx": -3}, "ctx must be >= 1"),
        ({"compute_dtype": "float16"}, "unknown compute_dtype 'float16'"),
        ({"position": "alibi"}, "unknown position 'alibi'"),
        ({"mlp": "relu"}, "unknown mlp 'relu'"),
        ({"tied_embeddings": "yes"}, "tied_embeddings must be true or false"),
        ({"d_model": 60, "n_heads": 20}, "rope needs an even head_dim"),
        ({"remat": "dots"}, "unknown remat 'dots'; choose one of none, full, save-dots"),
        ({"scan_layers": 1}, "scan_layers must be true or false"),
        ({"microbatches": 0}, "microbatches must be >= 1"),
    ],
)
def test_model_config_errors(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**{**BASE, **change})


def test_memory_fields_round_trip_and_leave_default_hashes_alone() -> None:
    """scan_layers / remat / microbatches are recorded when set (config.json is the run's
    provenance) and absent at their defaults, so configs written before them hash the same."""
    plain = ModelConfig(**BASE)
    assert not {"scan_layers", "remat", "microbatches"} & set(plain.to_dict())
    tuned = ModelConfig(**BASE, scan_layers=True, remat="save-dots", microbatches=4)
    assert {k: tuned.to_dict()[k] for k in ("scan_layers", "remat", "microbatches")} == {
        "scan_layers": True,
        "remat": "save-dots",
        "microbatches": 4,
    }
    assert ModelConfig.from_dict(tuned.to_dict()) == tuned
    assert tuned.num_params() == plain.num_params()  # stacked or not, the same parameters
    assert tuned.flops_per_token() == plain.flops_per_token()


def test_head_divisibility_error_suggests_fix() -> None:
    with pytest.raises(ConfigError, match=r"use n_heads in \[3, 4, 6\]"):
        ModelConfig(**{**BASE, "d_model": 48, "n_heads": 5})


def test_model_config_dict_round_trip_and_strict_keys() -> None:
    config = ModelConfig(**BASE, mlp="swiglu", position="learned", tied_embeddings=False)
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match=r"unknown ModelConfig key\(s\) \['dmodel'\]"):
        ModelConfig.from_dict({**BASE, "dmodel": 3})
    with pytest.raises(ConfigError, match=r"missing required key\(s\) \['d_ff'\]"):
        ModelConfig.from_dict({k: v for k, v in BASE.items() if k != "d_ff"})
    with pytest.raises(ConfigError, match="needs a table"):
        ModelConfig.from_dict([1, 2])  # type: ignore[arg-type]
    assert isinstance(ConfigError("x"), ValueError)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"peak_lr": 0.0}, "peak_lr must be in"),
        ({"peak_lr": float("nan")}, "peak_lr must be a finite number"),
        ({"warmup_steps": 1.5}, "fraction of the run and must be in"),
        ({"warmup_steps": -1}, "warmup_steps must be >= 0"),
        ({"warmup_steps": "10"}, "warmup_steps must be an int"),
        ({"b2": 1.0}, "b2 must be in"),
        ({"eps": 0.0}, "eps must be in"),
        ({"weight_decay": -0.1}, "weight_decay must be in"),
        ({"final_lr_fraction": 1.5}, "final_lr_fraction must be in"),
        ({"clip_norm": -1.0}, "clip_norm must be in"),
    ],
)
def test_optimizer_config_errors(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        OptimizerConfig(**change)


def test_optimizer_warmup_int_or_fraction() -> None:
    assert OptimizerConfig(warmup_steps=0.1).warmup_for(200) == 20
    assert OptimizerConfig(warmup_steps=7).warmup_for(200) == 7
    assert OptimizerConfig(warmup_steps=500).warmup_for(10) == 9
    assert OptimizerConfig.from_dict({"peak_lr": 1e-3}).peak_lr == 1e-3


def test_mesh_resolve() -> None:
    assert MeshConfig().resolve(8) == (8, 1, 1)
    assert MeshConfig(data=2, fsdp=-1, tensor=2).resolve(8) == (2, 2, 2)
    assert MeshConfig(1, 2, 4).resolve(8) == (1, 2, 4)
    assert MeshConfig.from_spec("2,-1,1").resolve(8) == (2, 4, 1)
    with pytest.raises(ConfigError, match=r"has 4 devices but 8 are available"):
        MeshConfig(2, 2, 1).resolve(8)
    with pytest.raises(ConfigError, match=r"fixed axes use 3 devices, which does not divide"):
        MeshConfig(3, -1, 1).resolve(8)
    with pytest.raises(ConfigError, match="only one axis may be -1"):
        MeshConfig(-1, -1, 1)
    with pytest.raises(ConfigError, match="mesh fsdp must be a positive int"):
        MeshConfig(1, 0, 1)
    with pytest.raises(ConfigError, match="three integers"):
        MeshConfig.from_spec("2,x,1")
    with pytest.raises(ConfigError, match="needs three sizes"):
        MeshConfig.from_spec((2, 4))


def test_presets_follow_shape_rule_and_span_the_range() -> None:
    tiny, top = preset("tiny"), model_for_params(1e9)
    assert 1.5e4 <= tiny.num_params() <= 3e4 and 16 <= tiny.d_model <= 32
    assert 0.7e9 <= top.num_params() <= 1.4e9
    for name in preset_names():
        config = preset(name)
        assert config.d_ff == 4 * config.d_model
        if name not in ("125m", "350m"):  # GPT-3's own shapes
            assert config.n_layers == max(1, round(config.d_model / ASPECT_RATIO))
    gpt3_medium = preset("350m", vocab_size=50257)
    assert (gpt3_medium.n_layers, gpt3_medium.d_model, gpt3_medium.n_heads) == (24, 1024, 16)
    assert 3.4e8 <= gpt3_medium.num_params() <= 3.6e8  # GPT-3 Medium: 350M with GPT-2's vocab
    gpt3_small = preset("125m")
    assert (gpt3_small.n_layers, gpt3_small.d_model, gpt3_small.n_heads, gpt3_small.ctx) == (
        12,
        768,
        12,
        1024,
    )


@pytest.mark.parametrize("target", [3e4, 3e5, 1e6, 3e6, 1e7, 1e8])
def test_model_for_params_is_close_in_log(target: float) -> None:
    for mlp in ("gelu", "swiglu"):
        config = model_for_params(target, mlp=mlp)
        assert abs(math.log(config.num_params() / target)) < math.log(1.6), config
        assert config.mlp == mlp


def test_preset_errors() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        preset("huge")
    with pytest.raises(ConfigError, match="chooses \\['d_model'\\] by the shape rule"):
        model_for_params(1e6, d_model=128)
    with pytest.raises(ConfigError, match="target_params must be a positive number"):
        model_for_params(-5)


def test_units() -> None:
    assert PF_DAY_FLOPS == 1e15 * 86400
    assert flops_to_pf_days(8.64e20) == pytest.approx(10.0)
    assert pf_days_to_flops(0.5) == pytest.approx(4.32e19)
    # 1e21 FLOPs on 1e15 FLOP/s devices at 40% MFU: 2.5e6 s = 694.4 h.
    assert accelerator_hours(1e21, 1e15, 0.4) == pytest.approx(1e21 / 4e14 / 3600)
    assert flops_from_accelerator_hours(accelerator_hours(3e20, 9.9e14, 0.5), 9.9e14, 0.5) == (
        pytest.approx(3e20)
    )
    with pytest.raises(ConfigError, match="mfu in"):
        accelerator_hours(1e20, 1e15, 0.0)


def test_info_command_output(tmp_path, capsys) -> None:
    from lab.cli.info import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    toml = tmp_path / "run.toml"
    toml.write_text("[model]\nn_layers = 2\nd_model = 64\nn_heads = 4\nd_ff = 256\n")
    args = parser.parse_args(["info", "--config", str(toml), "--budget", "1e15"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    config = ModelConfig(**BASE)
    assert f"{config.num_params():,} total" in out
    assert f"{config.num_nonembedding_params():,} non-embedding" in out
    assert f"{1e15 / config.flops_per_token('6N'):.4g} tokens" in out
    toml.write_text("[model]\nn_layers = 2\nd_model = 64\nn_heads = 5\nd_ff = 256\n")
    from experiments.main import main  # the dispatcher turns the ConfigError into one line

    assert main(["info", "--config", str(toml), "--budget", "1e15"]) == 2
    assert "not divisible by n_heads=5" in capsys.readouterr().err


def test_config_counting_and_info_import_without_jax() -> None:
    """The dispatcher imports lab.cli.info for every command; planning must not load JAX."""
    import subprocess
    import sys

    code = (
        "import sys; import lab.config, lab.counting, lab.presets, lab.units, lab.cli.info;"
        "from lab.memory import estimate_memory;"
        "from lab.presets import preset; estimate_memory(preset('1m'), (2, 2, 2), 32);"
        "assert 'jax' not in sys.modules, 'jax was imported'"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
