"""`--cpu-devices`: a CPU split into one device per core trains the same run data-parallel.

The 2-device run must give the 1-device run's per-step losses (rtol 1e-5: only the order of
the gradient sums differs) and record its 2 devices; bad counts fail with the fix named.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_multihost import CONFIG, REPO, base_env, losses, train_command

from lab.errors import ConfigError
from lab.runtime.compiler_options import step_compiler_options
from lab.runtime.cpu_devices import resolve_cpu_devices, usable_cores, use_cpu_devices


def test_two_cpu_devices_train_the_one_device_run(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    runs = {}
    for devices in ("1", "2"):
        out = tmp_path / f"dev{devices}"
        done = subprocess.run(
            train_command(config, out, "--cpu-devices", devices),
            cwd=REPO,
            env=base_env(),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        runs[devices] = losses(out)
        result = json.loads((out / "result.json").read_text())
        assert result["provenance"]["mesh"]["data"] == int(devices)
    (one_steps, one_final, one_count), (two_steps, two_final, two_count) = runs["1"], runs["2"]
    assert (one_count, two_count) == (1, 2)
    assert len(one_steps) == len(two_steps) == 32
    np.testing.assert_allclose(two_steps, one_steps, rtol=1e-5)
    np.testing.assert_allclose(two_final, one_final, rtol=1e-5)


def test_auto_is_one_device_per_usable_core() -> None:
    assert resolve_cpu_devices("auto") == resolve_cpu_devices("AUTO") == usable_cores() >= 1
    assert resolve_cpu_devices("3") == resolve_cpu_devices(3) == 3


@pytest.mark.parametrize("bad", ["0", "-2", "two", 0, 1.5, True])
def test_bad_device_counts_name_the_fix(bad) -> None:
    with pytest.raises(ConfigError, match="positive integer or 'auto'"):
        resolve_cpu_devices(bad)


def test_too_late_to_change_devices_says_so() -> None:
    import jax

    jax.devices()  # the test process's backends are running
    with pytest.raises(ConfigError, match="before any JAX computation"):
        use_cpu_devices(3)


def _compiled_train_step_text(model) -> str:
    import jax
    import numpy as np

    from lab.config import MeshConfig, OptimizerConfig
    from lab.optim import make_optimizer
    from lab.sharding import make_mesh, stacked_batch_sharding
    from lab.train_step import init_train_state, make_train_step

    mesh = make_mesh(MeshConfig(1, 1, 1), jax.devices()[:1])
    optimizer, _ = make_optimizer(OptimizerConfig(peak_lr=1e-3), 100)
    state, shardings = init_train_state(model, optimizer, mesh, jax.random.key(0))
    step = make_train_step(model, optimizer, mesh, shardings, steps_per_call=2)
    tokens = np.zeros((2, 8, model.ctx + 1), np.int32)
    batch = jax.device_put(tokens, stacked_batch_sharding(mesh))
    return step.lower(state, batch, np.int32(2)).compile().as_text()


def test_cpu_steps_read_transposed_dot_operands_without_copies(monkeypatch) -> None:
    """The claim behind the dot option: fewer layout copies in the compiled step."""
    from lab import train_step
    from lab.presets import model_for_params

    assert step_compiler_options("gpu") is None
    if step_compiler_options("cpu") is None:
        pytest.skip("this jaxlib has no YNNPACK dot option")
    model = model_for_params(2e4, ctx=16)
    with_library = _compiled_train_step_text(model).count("copy_bitcast_fusion")
    monkeypatch.setattr(train_step, "step_compiler_options", lambda platform: None)
    default = _compiled_train_step_text(model).count("copy_bitcast_fusion")
    assert with_library < default


def test_cpu_steps_leave_fewer_reductions_to_xla_than_with_dots_only(monkeypatch) -> None:
    """The claim behind the reduce option: softmax and LayerNorm statistics no longer run as
    XLA's own split reductions (a reduce-window, then a reduce) next to the library's dots."""
    from lab import train_step
    from lab.config import ModelConfig
    from lab.runtime import compiler_options

    options = step_compiler_options("cpu")
    if options is None or "REDUCE" not in str(options):
        pytest.skip("this jaxlib has no YNNPACK reduce option")
    model = ModelConfig(n_layers=1, d_model=64, n_heads=2, d_ff=256, ctx=128, vocab_size=256)
    xla_reductions = "calls=%wrapped_reduce"
    with_reduce = _compiled_train_step_text(model).count(xla_reductions)
    dots_only = compiler_options.CPU_LIBRARY_CHOICES[-1]
    monkeypatch.setattr(train_step, "step_compiler_options", lambda platform: dict(dots_only))
    assert with_reduce < _compiled_train_step_text(model).count(xla_reductions) / 2


def test_a_jaxlib_without_the_options_falls_back(monkeypatch) -> None:
    from lab.runtime import compiler_options

    unknown = {"xla_cpu_no_such_option": "x"}
    dots_only = compiler_options.CPU_LIBRARY_CHOICES[-1]
    try:
        monkeypatch.setattr(compiler_options, "CPU_LIBRARY_CHOICES", (unknown, dots_only))
        compiler_options._cpu_library_options.cache_clear()
        assert compiler_options.step_compiler_options("cpu") in (dots_only, None)
        monkeypatch.setattr(compiler_options, "CPU_LIBRARY_CHOICES", (unknown,))
        compiler_options._cpu_library_options.cache_clear()
        assert compiler_options.step_compiler_options("cpu") is None
    finally:
        compiler_options._cpu_library_options.cache_clear()
