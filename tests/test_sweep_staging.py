"""Copying a run directory file by file (how a run is moved aside on an object store)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from experiments import staging


class RecordingPath(type(Path())):  # type: ignore[misc]
    """A local path that logs the order files are written in (result.json must be last)."""

    written: ClassVar[list[str]] = []

    def write_bytes(self, data: bytes) -> int:
        RecordingPath.written.append(self.name)
        return super().write_bytes(data)


def test_copy_tree_copies_everything_and_result_last(tmp_path) -> None:
    src = tmp_path / "src"
    (src / "checkpoints" / "40").mkdir(parents=True)
    (src / "checkpoints" / "40" / "state").write_bytes(b"\x00\x01")
    (src / "result.json").write_text("{}")
    (src / "metrics.jsonl").write_text('{"step": 1}\n')
    dst = RecordingPath(tmp_path / "dst")
    assert staging.copy_tree(src, dst) == 3
    assert RecordingPath.written[-1] == "result.json"
    assert (tmp_path / "dst" / "checkpoints" / "40" / "state").read_bytes() == b"\x00\x01"
    assert (tmp_path / "dst" / "metrics.jsonl").read_text() == '{"step": 1}\n'
