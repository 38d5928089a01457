"""An installed accelerator plugin is not a chip: libtpu is on CPU hosts too (for `compile`)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from lab.runtime import platforms


def test_plugin_counts_only_where_its_device_nodes_exist(monkeypatch) -> None:
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())  # all installed
    monkeypatch.setattr(platforms.glob, "glob", lambda pattern: [])  # no device nodes
    assert platforms.usable_plugins() == [] and platforms.cpu_only()
    monkeypatch.setattr(
        platforms.glob, "glob", lambda p: ["/dev/accel0"] if p.startswith("/dev/accel") else []
    )
    assert platforms.usable_plugins() == ["libtpu"] and not platforms.cpu_only()
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    assert platforms.cpu_only()  # the user's choice wins


def test_skip_absent_tpu_sets_cpu_only_when_libtpu_has_no_chips(monkeypatch) -> None:
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(platforms.glob, "glob", lambda pattern: [])
    platforms.skip_absent_tpu()
    assert os.environ["JAX_PLATFORMS"] == "cpu"
    monkeypatch.setenv("JAX_PLATFORMS", "cuda")
    platforms.skip_absent_tpu()
    assert os.environ["JAX_PLATFORMS"] == "cuda"


@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None, reason="needs libtpu installed")
def test_the_dispatcher_on_a_cpu_host_with_libtpu_prints_no_tpu_warnings() -> None:
    """`scaling-lab info` in a fresh process without JAX_PLATFORMS: no libtpu start-up noise."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    code = (
        "from lab.runtime.platforms import skip_absent_tpu; skip_absent_tpu(); "
        "import jax; print(jax.devices()[0].platform)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "cpu"
    assert "TPU" not in out.stderr and "libtpu" not in out.stderr
