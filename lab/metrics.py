"""Per-step and per-eval metrics of a run: JSONL on disk, a progress bar on a terminal.

Lines are appended and flushed as they come; on resume the file is cut back to the restored
checkpoint's step, so `metrics.jsonl` of a resumed run equals that of an uninterrupted one
(wall-clock fields aside). A line that is not JSON (torn by a kill or a full disk, or
garbage) is skipped, not taken as the end of the file: every readable line up to the
checkpoint is kept, and the repair is reported with a warning.

An object store (`gs://`) cannot append: there the log is kept in memory and the object is
rewritten whole by `sync()`, which training calls before each checkpoint save starts (so a
committed checkpoint at step s always finds every line up to s in the object) and `close()`
calls at the end. Lines after the last sync are lost with a killed process, exactly the
lines a resume cuts away locally. Local files behave as before, byte for byte.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from lab.runtime.atomic_io import as_path, is_remote, read_text, write_text_atomic


class JsonlLog:
    """An append-only JSONL file whose lines carry a `step` (local, or gs:// rewritten whole)."""

    def __init__(self, path: str | Path, *, writer: bool = True) -> None:
        """`writer=False` (processes other than 0 of a multi-host run) reads but never writes."""
        self.remote = is_remote(path)
        self.path = as_path(path) if self.remote else Path(path)
        self.writer = writer
        self._handle = None
        self._buffer: list[str] = []  # remote: the object's lines, and those not yet synced
        self._dirty = False
        if self.remote:
            self._buffer = self._remote_text().splitlines(keepends=True) if writer else []
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a") if writer else None

    def _remote_text(self) -> str:
        return read_text(self.path) if self.path.exists() else ""

    def truncate_after(self, step: int) -> None:
        """Drop lines past `step` (written after the checkpoint a run resumes from)."""
        if not self.writer:
            return
        if self._handle is not None:
            self._handle.close()
        lines, unreadable = self._parse()
        kept = [line for line in lines if line["step"] <= step]
        if unreadable:
            steps = {line["step"] for line in kept}
            missing = sorted(set(range(min(steps, default=1), step + 1)) - steps)
            warnings.warn(
                f"{self.path}: skipped {len(unreadable)} unreadable line(s) (line "
                f"{', '.join(map(str, unreadable[:5]))}); repaired to step {step}, the "
                "checkpoint it resumes from"
                + (f"; steps {_ranges(missing)} had no readable line" if missing else ""),
                stacklevel=2,
            )
        text = "".join(json.dumps(line) + "\n" for line in kept)
        if self.remote:
            self._buffer, self._dirty = text.splitlines(keepends=True), True
            self.sync()
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)
        self._handle = self.path.open("a")

    def read(self) -> list[dict[str, Any]]:
        """Every readable line, in order (unreadable ones skipped)."""
        return self._parse()[0]

    def _raw_lines(self) -> list[str]:
        if self.remote:
            return "".join(self._buffer).splitlines() if self.writer else self._remote_lines()
        if not self.path.exists():
            return []
        return self.path.read_bytes().decode(errors="replace").splitlines()

    def _remote_lines(self) -> list[str]:
        return self._remote_text().splitlines()

    def _parse(self) -> tuple[list[dict[str, Any]], list[int]]:
        """(records, 1-based numbers of the unreadable lines before the last one)."""
        raw_lines = self._raw_lines()
        records, unreadable = [], []
        for number, raw in enumerate(raw_lines, start=1):
            try:
                record = json.loads(raw)
            except json.JSONDecodeError:
                record = None
            if isinstance(record, dict) and isinstance(record.get("step"), int):
                records.append(record)
            elif number < len(raw_lines) and raw.strip():
                unreadable.append(number)  # the last line torn by a kill is expected
        return records, unreadable

    def write(self, record: dict[str, Any]) -> None:
        if not self.writer:
            return
        if self.remote:
            self._buffer.append(json.dumps(record) + "\n")
            self._dirty = True
            return
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()

    def sync(self) -> None:
        """Make the stored log hold every line written so far (remote: one whole-object
        upload, retried on transient errors; local lines are flushed as written)."""
        if self.remote and self.writer and self._dirty:
            write_text_atomic(self.path, "".join(self._buffer))
            self._dirty = False

    def close(self) -> None:
        self.sync()
        if self._handle is not None:
            self._handle.close()


def _ranges(steps: list[int]) -> str:
    """[3, 4, 5, 9] -> '3-5, 9'."""
    parts: list[str] = []
    for step in steps:
        if parts and parts[-1][1] == step - 1:
            parts[-1] = (parts[-1][0], step)
        else:
            parts.append((step, step))
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in parts)


def show_progress() -> bool:
    """A progress bar only for a person at a terminal: not in CI, not in log files."""
    if os.environ.get("CI") or os.environ.get("SCALING_LAB_QUIET"):
        return False
    return sys.stderr.isatty()


class Progress:
    """tqdm when wanted, nothing otherwise."""

    def __init__(self, total: int, initial: int, description: str, enabled: bool) -> None:
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=description, unit="step")

    def update(self, steps: int, loss: float) -> None:
        if self._bar is not None:
            self._bar.update(steps)
            self._bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
