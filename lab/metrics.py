"""Per-step and per-eval metrics of a run: JSONL on disk, a progress bar on a terminal.

Lines are appended and flushed as they come; on resume the file is cut back to the restored
checkpoint's step, so `metrics.jsonl` of a resumed run equals that of an uninterrupted one
(wall-clock fields aside). A line that is not JSON (torn by a kill or a full disk, or
garbage) is skipped, not taken as the end of the file: every readable line up to the
checkpoint is kept, and the repair is reported with a warning.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
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
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(line) + "\n" for line in kept))
        os.replace(tmp, self.path)
        self._handle = self.path.open("a")

    def read(self) -> list[dict[str, Any]]:
        """Every readable line, in order (unreadable ones skipped)."""
        return self._parse()[0]

    def _parse(self) -> tuple[list[dict[str, Any]], list[int]]:
        """(records, 1-based numbers of the unreadable lines before the last one)."""
        if not self.path.exists():
            return [], []
        raw_lines = self.path.read_bytes().decode(errors="replace").splitlines()
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
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()

    def close(self) -> None:
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
