"""Atomic writes: a failed write leaves the previous file intact and no debris."""

import json

import pytest

from lab.runtime import atomic_io


def test_write_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "result.json"
    atomic_io.write_json_atomic(path, {"loss": 1.5})
    atomic_io.write_json_atomic(path, {"loss": 2.5})
    assert json.loads(path.read_text()) == {"loss": 2.5}
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]


def test_failed_write_keeps_old_content(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    atomic_io.write_json_atomic(path, {"loss": 1.5})

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(atomic_io.os, "replace", explode)
    with pytest.raises(OSError, match="disk full"):
        atomic_io.write_json_atomic(path, {"loss": 9.9})
    assert json.loads(path.read_text()) == {"loss": 1.5}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_unserialisable_value_fails_before_touching_the_file(tmp_path):
    path = tmp_path / "result.json"
    atomic_io.write_json_atomic(path, {"ok": True})
    with pytest.raises(TypeError):
        atomic_io.write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": True}
