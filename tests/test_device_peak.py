"""The CPU peak cache keeps the best reading: a low (busy-host) number is replaced, a higher
one is never lowered."""

import json
import os

import jax
import pytest

from lab.runtime import device_peak
from lab.runtime.device_peak import device_peak_flops


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch):
    """As if no run in this process had probed yet."""
    monkeypatch.setattr(device_peak, "_rechecked", set())


def _key() -> str:
    cores = len(os.sched_getaffinity(0))
    return f"{jax.devices()[0].device_kind}|float32|cores={cores}|{os.environ.get('XLA_FLAGS', '')}"


def test_low_cached_peak_is_raised_by_the_recheck(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_LAB_CACHE", str(tmp_path))
    (tmp_path / "device_peak.json").write_text(json.dumps({_key(): 1.0}))
    peak, source = device_peak_flops("float32")
    assert source == "measured" and peak > 1e8  # any CPU does 0.1 GFLOP/s
    assert json.loads((tmp_path / "device_peak.json").read_text())[_key()] == peak


def test_higher_cached_peak_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_LAB_CACHE", str(tmp_path))
    (tmp_path / "device_peak.json").write_text(json.dumps({_key(): 1e30}))
    assert device_peak_flops("float32") == (1e30, "measured")


def test_first_measurement_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_LAB_CACHE", str(tmp_path))
    peak, _ = device_peak_flops("float32")
    assert json.loads((tmp_path / "device_peak.json").read_text()) == {_key(): peak}


def test_a_process_rechecks_once(tmp_path, monkeypatch):
    """A sweep worker's later runs reuse the reading instead of probing (~0.1 s) each time."""
    monkeypatch.setenv("SCALING_LAB_CACHE", str(tmp_path))
    (tmp_path / "device_peak.json").write_text(json.dumps({_key(): 5e9}))
    probes = []
    monkeypatch.setattr(device_peak, "measure_matmul_peak", lambda *a, **k: probes.append(1) or 6e9)
    assert device_peak_flops("float32") == (6e9, "measured")
    assert device_peak_flops("float32") == (6e9, "measured")
    assert len(probes) == 1
