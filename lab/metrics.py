"""Per-step and per-eval metrics of a run: JSONL on disk, a progress bar on a terminal.

Lines are appended and flushed as they come; on resume the file is cut back to the restored
checkpoint's step, so `metrics.jsonl` of a resumed run equals that of an uninterrupted one
(wall-clock fields aside).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


class JsonlLog:
    """An append-only JSONL file whose lines carry a `step`."""

    def __init__(self, path: str | Path, *, writer: bool = True) -> None:
        """`writer=False` (processes other than 0 of a multi-host run) reads but never writes."""
        self.path = Path(path)
        self.writer = writer
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("a") if writer else None

    def truncate_after(self, step: int) -> None:
        """Drop lines past `step` (written after the checkpoint a run resumes from)."""
        if not self.writer:
            return
        self._handle.close()
        kept = [line for line in self.read() if line["step"] <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(line) + "\n" for line in kept))
        os.replace(tmp, self.path)
        self._handle = self.path.open("a")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = []
        for raw in self.path.read_text().splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                break  # a line torn by a kill: everything before it is intact
        return lines

    def write(self, record: dict[str, Any]) -> None:
        if not self.writer:
            return
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


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
