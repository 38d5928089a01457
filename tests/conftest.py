"""Test session setup: 8 fake CPU devices, so sharding tests exercise real meshes.

Must run before JAX initialises its backends, hence at import time of conftest.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest
from gcs_emulator import Bucket, emulator_environment, running_emulator


@pytest.fixture(scope="session")
def gcs_emulator():
    """One GCS emulator on 127.0.0.1 for the session (TensorStore reads its endpoint once
    per process), with this process and its children pointed at it; see tests/gcs_emulator."""
    with running_emulator() as url, emulator_environment(url):
        yield url


@pytest.fixture
def gcs_bucket(gcs_emulator, request) -> Bucket:
    """A fresh prefix of the emulator's bucket for one test: gs://lab-bucket/<test>-<id>."""
    return Bucket.for_test(gcs_emulator, request.node.name)


@pytest.fixture(scope="module")
def data_config(tmp_path_factory):
    """A small synthetic corpus (its cache built once per module) for tiny training runs; a
    module that needs another corpus defines its own `data_config`."""
    from lab.data import DataConfig, load_corpus

    config = DataConfig(
        corpus="synthetic",
        data_dir=str(tmp_path_factory.mktemp("data")),
        eval_fraction=0.1,
        synthetic={"states": 32, "fanout": 4, "n_docs": 600, "doc_len": 64},
    )
    load_corpus(config)
    return config


class TrainCalls:
    """What `lab.train.train` was called with while `train_calls` watched: each call's device
    ids, in call order, and the most calls running at once (packed runs overlap)."""

    def __init__(self) -> None:
        import threading

        self.devices: list[tuple[int, ...]] = []
        self.most_at_once = 0
        self._running = 0
        self._lock = threading.Lock()

    def wrap(self, real_train):
        def counting_train(config, out, **kwargs):
            with self._lock:
                self.devices.append(tuple(d.id for d in kwargs["devices"]))
                self._running += 1
                self.most_at_once = max(self.most_at_once, self._running)
            try:
                return real_train(config, out, **kwargs)
            finally:
                with self._lock:
                    self._running -= 1

        return counting_train


@pytest.fixture
def train_calls(monkeypatch) -> TrainCalls:
    """`lab.train.train` replaced by a recording wrapper (`monkeypatch.undo()` restores it)."""
    import lab.train

    calls = TrainCalls()
    monkeypatch.setattr("lab.train.train", calls.wrap(lab.train.train))
    return calls
